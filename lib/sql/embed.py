#!/usr/bin/env python3
"""Embeds the ledger's SQL in the library: writes a C file defining the
migrations and the statement registry, and a header with their enums.

    embed.py OUT.c OUT.h FILE.sql...

Each FILE is in a directory named `migrations` or `statements` (see
lib/sql/README.md for both formats). Standard library only: meson runs this
at build time with the python3 it finds.

The texts go out as arrays of byte values, not string literals: C11 promises
string literals of 4095 bytes only, and migrations are longer. What the
database receives is exactly the text built here, byte for byte; the
checksums in tests/migrations.sha256 are taken over that text.
"""
import os
import re
import sys

# PostgreSQL type name -> OID (pg_type.dat). "unknown" (0) lets the server
# infer the type, as a NULL paramTypes does.
OIDS = {
    'unknown': 0, 'bool': 16, 'bytea': 17, 'int8': 20, 'int2': 21, 'int4': 23, 'text': 25,
    'json': 114, 'float8': 701, 'bytea[]': 1001, 'int2[]': 1005, 'int4[]': 1007, 'text[]': 1009, 'int8[]': 1016,
    'timestamptz': 1184, 'timestamptz[]': 1185, 'numeric': 1700, 'jsonb': 3802, 'jsonb[]': 3807,
}
MAX_PARAMS = 12  # pl_stmt_def.types in schema.h
CLASSES = {'point': 'PL_CLASS_POINT', 'write': 'PL_CLASS_WRITE', 'heavy': 'PL_CLASS_HEAVY',
           'maintenance': 'PL_CLASS_MAINTENANCE', 'keyset': 'PL_CLASS_KEYSET'}
FORMATS = {'text': 0, 'binary': 1}
META = re.compile(r'^-- ([a-z-]+): (.*)$')


class Error(Exception):
    pass


def read_lines(path):
    with open(path, 'rb') as f:
        data = f.read()
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise Error('%s: not UTF-8 (%s)' % (path, e))
    if '\r' in text or '\0' in text:
        raise Error('%s: carriage return or NUL byte' % path)
    if not text.endswith('\n'):
        raise Error('%s: the last line has no newline' % path)
    return text[:-1].split('\n')


def header(path, lines, keys):
    """The `-- key: value` lines of the leading comment block, and the
    number of lines that block spans."""
    meta, n = {}, 0
    while n < len(lines) and lines[n].startswith('--'):
        m = META.match(lines[n])
        if m and m.group(1) in keys:
            if m.group(1) in meta:
                raise Error('%s:%d: "%s" given twice' % (path, n + 1, m.group(1)))
            meta[m.group(1)] = m.group(2).strip()
        n += 1
    for k in keys:
        if keys[k] and k not in meta:
            raise Error('%s: no "-- %s:" line before the SQL' % (path, k))
    return meta, n


def migration(path):
    """A migration file: its text is every line that does not start with
    "--", newlines included (the comments are the file's, not the
    database's)."""
    base = os.path.basename(path)
    m = re.match(r'^(\d{3})_[a-z0-9_]+\.sql$', base)
    if not m:
        raise Error('%s: a migration is named NNN_slug.sql' % path)
    lines = read_lines(path)
    meta, _ = header(path, lines, {'description': True})
    text = ''.join(line + '\n' for line in lines if not line.startswith('--'))
    if not text.strip():
        raise Error('%s: no SQL' % path)
    return {'version': int(m.group(1)), 'file': base, 'description': meta['description'],
            'text': text}


def statement(path):
    """A statement file: the header, then the statement's lines, joined
    with single spaces into the one-line text the library sends."""
    base = os.path.basename(path)
    keys = {'name': True, 'symbol': True, 'params': True, 'param-format': True,
            'result-format': True, 'class': True}
    lines = read_lines(path)
    meta, n = header(path, lines, keys)
    body = lines[n:]
    if not body:
        raise Error('%s: no SQL' % path)
    for i, line in enumerate(body, n + 1):
        # Joining with one space is only unambiguous for trimmed lines.
        if not line or line != line.strip():
            raise Error('%s:%d: empty line, or space at its start or end' % (path, i))
        if line.startswith('--'):
            raise Error('%s:%d: comments go before the statement' % (path, i))
    name, sym = meta['name'], meta['symbol']
    if base != name + '.sql':
        raise Error('%s: its name is "%s": the file must be %s.sql' % (path, name, name))
    if not re.match(r'^PL_SQL_[A-Z0-9_]+$', sym):
        raise Error('%s: symbol "%s" is not PL_SQL_*' % (path, sym))
    rid = sym
    params = [] if meta['params'] == 'none' else [p.strip() for p in meta['params'].split(',')]
    for p in params:
        if p not in OIDS:
            raise Error('%s: unknown parameter type "%s"' % (path, p))
    if len(params) > MAX_PARAMS:
        raise Error('%s: more than %d parameters' % (path, MAX_PARAMS))
    for k, table in (('param-format', FORMATS), ('result-format', FORMATS), ('class', CLASSES)):
        if meta[k] not in table:
            raise Error('%s: %s "%s" is not one of %s' % (path, k, meta[k], ', '.join(table)))
    return {'name': name, 'symbol': sym, 'id': rid, 'file': base, 'params': params,
            'param_binary': FORMATS[meta['param-format']],
            'result_binary': FORMATS[meta['result-format']],
            'class': CLASSES[meta['class']], 'text': ' '.join(body)}


def c_string(s):
    """A short C string literal (names and descriptions only)."""
    out = ''
    for ch in s:
        if ch in '\\"':
            out += '\\' + ch
        elif ' ' <= ch <= '~':
            out += ch
        else:
            raise Error('"%s": only printable ASCII in names and descriptions' % s)
    return '"' + out + '"'


def c_bytes(decl, text):
    """decl = {bytes of text, 0}; one comment per line of SQL would be
    nice, but SQL may hold the sequence that ends a C comment."""
    data = text.encode('utf-8') + b'\0'
    rows = []
    for i in range(0, len(data), 16):
        rows.append('    ' + ', '.join('0x%02x' % b for b in data[i:i + 16]) + ',')
    return '%s = {\n%s\n};\n' % (decl, '\n'.join(rows))


def stmt_def(s, text_name):
    types = ', '.join(str(OIDS[p]) for p in s['params']) or '0'
    return ('{%s, %s, %d, {%s}, %s, %d, %d}' %
            (c_string(s['name']), text_name, len(s['params']), types, s['class'],
             s['param_binary'], s['result_binary']))


def generate(files):
    migrations, statements = [], []
    for path in files:
        kind = os.path.basename(os.path.dirname(os.path.abspath(path)))
        if kind == 'migrations':
            migrations.append(migration(path))
        elif kind == 'statements':
            statements.append(statement(path))
        else:
            raise Error('%s: not in a migrations or statements directory' % path)
    # Migration order is the number's; check_sql.c insists it is 1..N.
    migrations.sort(key=lambda m: m['version'])
    for key in ('name', 'id'):
        seen = set()
        for s in statements:
            if s[key] in seen:
                raise Error('two statements have the %s "%s"' % (key, s[key]))
            seen.add(s[key])
    registry = statements

    h = ['/* Generated by lib/sql/embed.py from the files of lib/sql/statements: do not',
         ' * edit. Included by schema.h, which documents this enum. */',
         '#ifndef PL_SQL_REGISTRY_H', '#define PL_SQL_REGISTRY_H', '',
         'enum pl_sql_id {']
    h += ['    %s, /* %s */' % (s['id'], s['file']) for s in registry]
    h += ['    PL_SQL_COUNT', '};', '', '#endif', '']

    c = ['/* Generated by lib/sql/embed.py from lib/sql/: do not edit. The SQL',
         ' * texts as bytes (see embed.py), the migrations and the statement',
         ' * registry (see schema.h). */',
         '#include <stddef.h>', '', '#include "schema.h"', '']
    for m in migrations:
        c.append('/* lib/sql/migrations/%s */' % m['file'])
        c.append(c_bytes('static const char migration_%d_text[]' % m['version'], m['text']))
    c.append('const pl_migration pl_migrations[] = {')
    for m in migrations:
        c.append('    {%s, migration_%d_text, %d, %s},' % (c_string(m['description']), m['version'],
                 m['version'], c_string(m['file'])))
    c.append('};')
    c.append('const size_t pl_migration_count = sizeof pl_migrations / sizeof pl_migrations[0];\n')
    for s in registry:
        c.append('/* lib/sql/statements/%s */' % s['file'])
        c.append(c_bytes('static const char sql_%s[]' % s['name'], s['text']))
    c += ['const pl_stmt_def pl_sql_registry[PL_SQL_COUNT] = {']
    c += ['    [%s] = %s,' % (s['id'], stmt_def(s, 'sql_%s' % s['name'])) for s in registry]
    c += ['};', '']
    return '\n'.join(c), '\n'.join(h)


def main(argv):
    if len(argv) < 4:
        sys.stderr.write('usage: embed.py OUT.c OUT.h FILE.sql...\n')
        return 2
    try:
        c, h = generate(argv[3:])
    except (Error, OSError) as e:
        sys.stderr.write('embed.py: %s\n' % e)
        return 1
    for path, text in ((argv[1], c), (argv[2], h)):
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
