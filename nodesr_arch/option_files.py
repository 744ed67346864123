"""Option files read safely: the one YAML reader of the project and the checks of option files and ``--force_yml``
that must come before anything is written (BasicSR compatibility fixes 7 and 8, :mod:`nodesr_arch.compat`).

Ground floor: the standard library and PyYAML only (imported when a file is read), nothing of the package and
nothing of BasicSR, so the fixes, the option checks and model loading share it.
"""
import os

_SAFE_LOADER = []

#: The largest option (or model) YAML read: option files are a few KB.
MAX_OPTION_FILE_BYTES = 1 << 20
#: The most YAML nodes a file may expand to, each alias counted as the nodes it repeats ("billion laughs").
MAX_YAML_NODES = 100_000
#: The deepest nesting of mappings and lists (option files nest 4 or 5 levels).
MAX_YAML_DEPTH = 64
#: The longest experiment name in bytes: BasicSR's longest derived name (``train_NAME_<time>.log``) adds 26.
MAX_NAME_BYTES = 200


class OptionFileError(ValueError):
    """An option file (or a ``--force_yml`` entry) is refused before anything is written; the message says why."""


def read_regular_file(path, max_bytes, what='file'):
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``.

    A fifo, a device (``/dev/zero``) or a folder, under any name or behind a symlink, is refused without
    blocking on it or reading it.

    Args:
        path (str): The file.
        max_bytes (int): Size bound.
        what (str): What the file is, for messages (``'option file'``, ``'image'``).

    Raises:
        FileNotFoundError: It cannot be opened (missing, permission denied...); the message names it.
        OptionFileError: It is not a regular file, or is too large.
    """
    import stat
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))  # a fifo's open would wait for a writer
    except OSError as e:
        raise FileNotFoundError(f'cannot read {path}: {e.strerror}') from None
    with open(fd, 'rb') as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ('a folder' if stat.S_ISDIR(st.st_mode) else 'a fifo' if stat.S_ISFIFO(st.st_mode) else
                    'a device' if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else 'a special file')
            raise OptionFileError(f'{path}: is {kind}, not a regular file ({what}s are read from regular files only)')
        if st.st_size > max_bytes:
            raise OptionFileError(f'{path}: {st.st_size} bytes, over the bound for {what}s ({max_bytes} bytes)')
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise FileNotFoundError(f'cannot read {path}: {e.strerror}') from None
    if len(data) > max_bytes:
        raise OptionFileError(f'{path}: over the bound for {what}s ({max_bytes} bytes)')
    return data


def _expanded_nodes(root):
    """The number of nodes a YAML node graph expands to (aliases repeat their anchor's nodes); refuses a
    recursive alias, nesting deeper than :data:`MAX_YAML_DEPTH` and more than :data:`MAX_YAML_NODES` nodes."""
    sizes, on_path, stack = {}, set(), [(root, False, 1)]
    while stack:
        node, finished, depth = stack.pop()
        key = id(node)
        children = [n for pair in node.value for n in pair] if node.id == 'mapping' else \
            node.value if node.id == 'sequence' else ()
        if finished:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_NODES:
                raise OptionFileError(f'its aliases expand to more than {MAX_YAML_NODES} values (an alias '
                                      f'bomb?), line {node.start_mark.line + 1}')
        elif key not in sizes:
            if key in on_path:
                raise OptionFileError(f'an alias refers to itself, line {node.start_mark.line + 1}')
            if depth > MAX_YAML_DEPTH:
                raise OptionFileError(f'nested more than {MAX_YAML_DEPTH} levels deep, line '
                                      f'{node.start_mark.line + 1}')
            on_path.add(key)
            stack.append((node, True, depth))
            stack.extend((c, False, depth + 1) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _ordered_unique_mapping(loader, node):
    from collections import OrderedDict
    out = OrderedDict()
    for (key, value), (key_node, _) in zip(loader.construct_pairs(node), node.value):
        try:
            seen = key in out
        except TypeError:
            raise OptionFileError(f'line {key_node.start_mark.line + 1}: a key that is a list or mapping '
                                  f'({key!r})') from None
        if seen:
            raise OptionFileError(f"'{key}' is given twice in one mapping (line {key_node.start_mark.line + 1}); "
                                  'give each key once')
        out[key] = value
    return out


def safe_yaml_loader():
    """PyYAML's safe loader (C-accelerated where available) building ``OrderedDict`` mappings, as BasicSR's
    ``ordered_yaml`` loader does, but no Python objects; a key given twice in a mapping and aliases expanding
    beyond :data:`MAX_YAML_NODES` nodes are refused (:class:`OptionFileError`)."""
    if not _SAFE_LOADER:
        import yaml

        class OrderedSafeLoader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):

            def get_single_data(self):
                node = self.get_single_node()
                if node is None:
                    return None
                _expanded_nodes(node)
                return self.construct_document(node)

        OrderedSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _ordered_unique_mapping)
        _SAFE_LOADER.append(OrderedSafeLoader)
    return _SAFE_LOADER[0]


def python_object_refusal(error):
    """The message for an option file that a safe loader refused (``yaml.constructor.ConstructorError``)."""
    return (f'holds a Python object ({error.problem.strip()}), which an option file may not: loading it would '
            'run code. Nothing was loaded')


def read_yaml(path, what='option file'):
    """Read an option (or model) YAML: the one reader of this project's YAML files.

    Mappings, lists, strings, numbers, ``~``; key order kept; a regular file of at most
    :data:`MAX_OPTION_FILE_BYTES`, in UTF-8, without Python object tags, keys given twice or alias bombs.

    Args:
        path (str): The file.
        what (str): What it is, for messages.

    Returns:
        The document (usually an ``OrderedDict``; None for an empty file).

    Raises:
        FileNotFoundError: It cannot be opened.
        OptionFileError: Anything else, the message starting with the path.
    """
    import yaml
    data = read_regular_file(path, MAX_OPTION_FILE_BYTES, what)
    try:
        return yaml.load(data.decode('utf-8'), Loader=safe_yaml_loader())
    except UnicodeDecodeError:
        raise OptionFileError(f'{path}: not a YAML text file (not UTF-8)') from None
    except OptionFileError as e:
        raise OptionFileError(f'{path}: {e}') from None
    except yaml.constructor.ConstructorError as e:
        raise OptionFileError(f'{path}: {python_object_refusal(e)}') from None
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f', line {mark.line + 1} column {mark.column + 1}' if mark is not None else ''
        raise OptionFileError(f'{path}: not valid YAML ({getattr(e, "problem", None) or e}{where})') from None


def plain_data(obj):
    """``obj`` read by :func:`read_yaml` with its ``OrderedDict`` mappings made plain dicts (order kept), so that
    ``yaml.safe_dump`` can write it back.

    Args:
        obj: A document or part of one.
    """
    if isinstance(obj, dict):
        return {k: plain_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_data(v) for v in obj]
    return obj


def check_experiment_name(name):
    """Refuse an experiment name that is not one plain folder name.

    BasicSR joins it to ``experiments/``, ``results/`` and ``tb_logger/`` and archives (renames) whatever is
    there: ``../../victim`` would rename a folder outside the project.

    Args:
        name: The ``name`` option, after ``--force_yml`` and ``--debug``.

    Raises:
        OptionFileError: Naming the problem.
    """
    if name is None or name == '':
        raise OptionFileError('name: missing (the experiment name)')
    if not isinstance(name, str):
        raise OptionFileError(f'name: must be a string (the experiment name, one folder name), got {name!r}')
    bad = [c for c in ('/', '\\', os.sep, os.altsep, '\0') if c and c in name]
    if bad or name in ('.', '..') or any(ord(c) < 32 for c in name) or name != name.strip():
        what = f'holds {bad[0]!r}' if bad else 'is not a folder name'
        raise OptionFileError(f'name: {name!r} {what}; the experiment name must be one folder name (letters, '
                              'digits, _ - . and the like), as it names experiments/<name> and results/<name>')
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise OptionFileError(f'name: {len(os.fsencode(name))} bytes long, more than an experiment name may be '
                              f'({MAX_NAME_BYTES}: BasicSR makes longer file names from it)')


def force_yml_keys(entry):
    """The keys of a ``--force_yml a:b:c=value`` entry, split as BasicSR splits them."""
    return entry.split('=', 1)[0].strip().split(':')  # as BasicSR splits them


def parse_force_yml(entry):
    """Split a ``--force_yml a:b:c=value`` entry into its keys and its value, read as YAML.

    Args:
        entry (str): The entry.

    Returns:
        tuple: ``keys`` (list[str]), ``value`` (a YAML scalar or list; ``none``/``None`` is None as for BasicSR).

    Raises:
        OptionFileError: Not ``key:sub=value`` with one ``=``, a key that is not a plain name (BasicSR
            passes it to ``exec``), or a value that is not a YAML scalar or flow list.
    """
    import re
    if entry.count('=') != 1:
        why = 'has no' if '=' not in entry else 'has more than one'
        raise OptionFileError(f"--force_yml: '{entry}' {why} '=' (the form is key:sub=value; BasicSR splits at "
                              "every '=')")
    keys = force_yml_keys(entry)
    text = entry.split('=', 1)[1].strip()
    for key in keys:
        if not re.fullmatch(r'[\w.+-]+', key):
            raise OptionFileError(f"--force_yml: '{entry}': key {key!r} is not a plain option name")
    try:
        return keys, force_yml_value(text)
    except OptionFileError as e:
        raise OptionFileError(f"--force_yml: '{entry}': {e}") from None


def force_yml_value(text):
    """A ``--force_yml`` value read as YAML (a scalar or a list); ``none``/``None`` is None, as for BasicSR.

    Fix 8 puts this in place of BasicSR's ``_postprocess_yml_value``, which passes a value starting with ``[`` to
    ``eval``.

    Raises:
        OptionFileError: Not a YAML scalar or list.
    """
    import yaml
    text = text.strip()
    if text.lower() == 'none':
        return None
    try:
        value = yaml.load(text, Loader=safe_yaml_loader())
    except (yaml.YAMLError, OptionFileError) as e:
        raise OptionFileError(f"the value is not a YAML value ({getattr(e, 'problem', None) or e})") from None
    if isinstance(value, dict):
        raise OptionFileError('the value is a mapping; give a number, a string or a [list] (quote a string that '
                              'holds ": ")')
    return value


def apply_force_yml(opt, entry):
    """Apply one ``--force_yml a:b:c=value`` entry to ``opt`` in place, as BasicSR would (see
    :func:`parse_force_yml`); the sections it goes through must exist.

    Raises:
        OptionFileError: A malformed entry or a section that does not exist.
    """
    keys, value = parse_force_yml(entry)
    node = opt
    for i, key in enumerate(keys[:-1]):
        if not isinstance(node.get(key), dict):
            raise OptionFileError(f"--force_yml: '{':'.join(keys[:i + 1])}' is not a section of the options")
        node = node[key]
    node[keys[-1]] = value


def read_option_file(argv):
    """Read ``-opt`` of ``argv`` with ``--force_yml`` and ``--debug`` applied as BasicSR does, and check the
    experiment name (fix 8).

    Args:
        argv (list[str]): Command-line arguments.

    Returns:
        dict | None: The options; None without ``-opt`` (BasicSR's parser says so).

    Raises:
        OptionFileError: The file is missing, unreadable or refused, an entry is malformed, or the name is not one
            folder name; the message starts with ``-opt:``, ``--force_yml:`` or ``name:``.
    """
    import argparse
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str)
    parser.add_argument('--force_yml', nargs='+', default=None)
    parser.add_argument('--debug', action='store_true')
    args, _ = parser.parse_known_args(argv)
    if args.opt is None:
        return None
    if not os.path.lexists(args.opt):
        raise OptionFileError(f"-opt: option file '{args.opt}' does not exist")
    try:
        opt = read_yaml(args.opt)
    except (OSError, OptionFileError) as e:
        raise OptionFileError(f'-opt: {e}') from None
    if not isinstance(opt, dict):
        raise OptionFileError(f"-opt: '{args.opt}' does not hold a mapping of options")
    for entry in args.force_yml or []:
        apply_force_yml(opt, entry)
    if args.debug and isinstance(opt.get('name'), str) and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    check_experiment_name(opt.get('name'))
    return opt
