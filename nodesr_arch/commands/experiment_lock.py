"""One run per experiment name: ``nodesr train`` and ``nodesr test`` hold a lock on their folder.

Two runs with one name would otherwise mix their files: the second archives the first's folder while the
first keeps writing into the second's. The lock is ``experiments/.NAME.lock`` (``results/.NAME.lock`` for
tests), beside the folder so BasicSR's archiving never moves it; it is an ``fcntl`` lock, which the system
releases when its process dies (even by ``kill -9``), so a stale lock file is simply taken over.
"""
import atexit
import os

try:
    import fcntl
except ImportError:  # Windows: no locking
    fcntl = None


class ExperimentLocked(RuntimeError):
    """Another live process holds the experiment's lock."""


def _holder(path):
    try:
        with open(path) as f:
            return f.read().strip() or 'unknown'
    except OSError:
        return 'unknown'


def lock_experiment(parent, name):
    """Take the lock of ``parent/name`` for the life of this process.

    Args:
        parent (str): ``experiments`` (training) or ``results`` (testing) under the run's root.
        name (str): The experiment name.

    Returns:
        str | None: The lock file, or None where locking is not available.

    Raises:
        ExperimentLocked: Naming the PID of the run that holds it.
    """
    if fcntl is None:
        return None
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, '.' + name.replace(os.sep, '_') + '.lock')
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ExperimentLocked(f"{os.path.join(parent, name)} is in use by another run (PID {_holder(path)}); "
                                   'wait for it to finish or choose another name') from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:  # its holder removed it on exit after we opened it
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())

    def release():
        try:
            os.unlink(path)  # while still holding it: a waiting run then retries on a new file
        except OSError:
            pass
        os.close(fd)

    atexit.register(release)
    return path
