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


class LockError(RuntimeError):
    """The experiment's lock cannot be taken; the message says why."""


class ExperimentLocked(LockError):
    """Another live process holds the experiment's lock."""


#: Never follow a link at the lock's name (it would truncate the link's target), never wait on a fifo.
_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0) | \
    getattr(os, 'O_CLOEXEC', 0)


def _holder(path):
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0))
        with open(fd) as f:
            return f.read(32).strip() or 'unknown'
    except (OSError, UnicodeDecodeError):
        return 'unknown'


def _open_lock(path):
    """Open (or make) the lock file ``path``, a regular file, never through a link."""
    import errno
    import stat
    try:
        fd = os.open(path, _FLAGS, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            raise LockError(f'{path} is a symbolic link; the lock is never followed (it would overwrite the '
                            'file it points to): remove the link') from None
        raise LockError(f'cannot make the experiment lock {path}: {e.strerror}') from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LockError(f'{path} is not a regular file; the experiment lock must be one: remove it')
    return fd


def lock_experiment(parent, name):
    """Take the lock of ``parent/name`` for the life of this process.

    Args:
        parent (str): ``experiments`` (training) or ``results`` (testing) under the run's root.
        name (str): The experiment name (one folder name, checked before).

    Returns:
        str | None: The lock file, or None where locking is not available.

    Raises:
        ExperimentLocked: Naming the PID of the run that holds it.
        LockError: The lock cannot be made or taken (a read-only folder, a link or folder at its name, a file
            system without ``flock``); the message says what failed.
    """
    import errno
    if fcntl is None:
        return None
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise LockError(f'cannot make {parent} for the experiment lock: {e.strerror}') from None
    path = os.path.join(parent, '.' + name.replace(os.sep, '_') + '.lock')
    while True:
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockError(f'cannot lock {path}: flock failed: {e.strerror} (a file system without '
                                'locking, e.g. some network file systems?); run in a folder on a local disk') from None
            raise ExperimentLocked(f"{os.path.join(parent, name)} is in use by another run (PID {_holder(path)}); "
                                   'wait for it to finish or choose another name') from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except FileNotFoundError:  # its holder removed it on exit after we opened it
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    except OSError as e:
        os.close(fd)
        raise LockError(f'cannot write the experiment lock {path}: {e.strerror}') from None

    def release():
        try:
            os.unlink(path)  # while still holding it: a waiting run then retries on a new file
        except OSError:
            pass
        os.close(fd)

    atexit.register(release)
    return path
