"""One way to run work in several processes."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

__all__ = []


def process_pool(workers, *, initializer=None, initargs=()):
    """A `concurrent.futures.ProcessPoolExecutor` of ``workers`` processes.

    Forked where the platform can fork: a script then needs no ``if __name__ == '__main__'`` guard, and
    what ``initializer`` receives is inherited rather than pickled. The workers of astro_deblend touch
    neither TensorFlow nor JAX, so forking a process that loaded them is safe.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=initializer, initargs=initargs)
