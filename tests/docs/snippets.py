#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Extracts the C and C++ snippets of README.md and docs/*.md so that the test suite compiles
(and, for programs, runs) every one of them.

Each ```cpp / ```c++ / ```c block must be preceded, on the line right above its fence, by a
marker (an HTML comment, so it does not show on the rendered page):

  <!-- snippet: program -->   a whole program: compiled, linked with libparallax, run (exit 0)
  <!-- snippet: body -->      leading #includes, using-directives, namespace aliases, type
                              definitions and PLX_ARCHIVE* lines go at file scope; the rest is
                              the body of `parallax::Result<void> snippet()`: compiled, linked
  <!-- snippet: run -->       as body, and run: snippet() must succeed (for fragments that need
                              no peer, file or device)
  <!-- snippet: toplevel -->  the whole snippet at file scope: compiled, linked

A body or toplevel snippet with no #include of its own gets snippet_context.h first (every
public Parallax header and the stand-ins docs use: Frame, fill(), MySink, ...). Options after
the kind, each introduced by ` | `: `head: CODE` (file scope, before the snippet) and
`before: CODE` (statements at the start of the body), for the names a fragment takes from the
surrounding text:  <!-- snippet: body | before: auto pool = example_pool(); -->

Commands: list SRCROOT               name (file_N):language:kind:file of every snippet
          extract SRCROOT NAME OUT   writes one snippet as a translation unit
          check SRCROOT NAME...      every block is marked, and NAME... (the configured list)
                                     is still the list, else reconfigure
"""
import pathlib
import re
import sys

FENCE = re.compile(r'^```(\S*)\s*$')
MARKER = re.compile(r'^<!--\s*snippet:\s*(.*?)\s*-->\s*$')
LANGS = {'cpp': 'cpp', 'c++': 'cpp', 'c': 'c'}
KINDS = ('program', 'body', 'run', 'toplevel')


class Snippet:
    def __init__(self, name, path, line, lang, kind, opts, code):
        self.name, self.path, self.line, self.lang = name, path, line, lang
        self.kind, self.opts, self.code = kind, opts, code


def markdown_files(root):
    root = pathlib.Path(root)
    return [root / 'README.md'] + sorted((root / 'docs').glob('*.md'))


def parse(root):
    """All snippets, and the problems found (unmarked blocks, bad markers)."""
    snippets, problems = [], []
    for path in markdown_files(root):
        rel = path.relative_to(root)
        lines = path.read_text(encoding='utf-8').split('\n')
        stem = re.sub(r'[^A-Za-z0-9]', '_', path.stem).lower()
        i, count = 0, 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                if MARKER.match(lines[i]) and not (i + 1 < len(lines) and FENCE.match(lines[i + 1])):
                    problems.append(f'{rel}:{i + 1}: snippet marker not directly above a ``` fence')
                i += 1
                continue
            end = i + 1
            while end < len(lines) and not lines[end].startswith('```'):
                end += 1
            lang = LANGS.get(m.group(1).lower())
            marker = MARKER.match(lines[i - 1]) if i > 0 else None
            if lang is not None:
                if marker is None:
                    problems.append(f'{rel}:{i + 1}: ```{m.group(1)} block without a '
                                    '<!-- snippet: program|body|run|toplevel --> marker above it')
                else:
                    parts = [p.strip() for p in marker.group(1).split(' | ')]
                    kind, opts = parts[0], {}
                    for p in parts[1:]:
                        key, _, value = p.partition(':')
                        if key.strip() not in ('head', 'before'):
                            problems.append(f'{rel}:{i}: unknown snippet option {key.strip()!r}')
                        opts[key.strip()] = value.strip()
                    if kind not in KINDS:
                        problems.append(f'{rel}:{i}: unknown snippet kind {kind!r}')
                    count += 1
                    snippets.append(Snippet(f'{stem}_{count}', rel, i + 2, lang, kind, opts,
                                            lines[i + 1:end]))
            elif marker is not None:
                problems.append(f'{rel}:{i + 1}: snippet marker above a ```{m.group(1)} block '
                                '(only cpp, c++ and c are compiled)')
            i = end + 1
    return snippets, problems


TOP_START = re.compile(r'^\s*(#|using namespace\b|namespace\s+\w+\s*=|PLX_ARCHIVE|'
                       r'(struct|class|enum)\b[^;()]*(\{|$))')


def split_body(code):
    """Leading file-scope lines (includes, using, aliases, type definitions, PLX_ARCHIVE*) and the
    statements after them."""
    i, depth, in_type = 0, 0, False
    while i < len(code):
        line = code[i]
        stripped = line.strip()
        if in_type or depth > 0:
            depth += line.count('{') - line.count('}')
            if depth <= 0 and stripped.endswith(';'):
                in_type, depth = False, 0
            i += 1
            continue
        if not stripped or stripped.startswith('//'):
            i += 1
            continue
        if not TOP_START.match(line):
            break
        if re.match(r'^\s*(struct|class|enum)\b', line):
            depth = line.count('{') - line.count('}')
            in_type = not (depth <= 0 and stripped.endswith(';'))
        elif stripped.startswith('PLX_ARCHIVE'):
            depth = line.count('(') - line.count(')')
            while depth > 0:
                i += 1
                depth += code[i].count('(') - code[i].count(')')
            depth = 0
        i += 1
    return code[:i], code[i:]


def translation_unit(s):
    loc = f'// {s.path}:{s.line} ({s.kind})'
    line = f'#line {s.line} "{s.path}"'
    if s.kind == 'program':
        return '\n'.join([loc, line] + s.code) + '\n'
    has_includes = any(l.lstrip().startswith('#include') for l in s.code)
    out = [loc]
    if not has_includes:
        out.append('#include "snippet_context.h"')
    if s.kind == 'toplevel':
        if 'head' in s.opts:
            out.append(s.opts['head'])
        out += [line] + s.code
    else:
        top, body = split_body(s.code)
        out += [line] + top
        if 'head' in s.opts:
            out.append(s.opts['head'])
        out.append('parallax::Result<void> snippet();')
        out.append('parallax::Result<void> snippet() {')
        if 'before' in s.opts:
            out.append(s.opts['before'])
        out.append(f'#line {s.line + len(top)} "{s.path}"')
        out += body
        out.append('  return {};')
        out.append('}')
    if s.kind == 'run':
        out += ['#include <cstdio>',
                'int main() {',
                '  auto r = snippet();',
                '  if (!r.ok()) std::fprintf(stderr, "snippet failed: %s\\n", r.error().to_string().c_str());',
                '  return r.ok() ? 0 : 1;',
                '}']
    else:
        # Linked into an executable: body and toplevel snippets are compiled and linked, not run.
        out.append('int main() { return 0; }')
    return '\n'.join(out) + '\n'


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    cmd, root = argv[1], argv[2]
    snippets, problems = parse(root)
    if cmd == 'list':
        for s in snippets:
            print(f'{s.name}:{s.lang}:{s.kind}:{s.path}')
    elif cmd == 'extract':
        name, out = argv[3], argv[4]
        found = [s for s in snippets if s.name == name]
        if not found:
            sys.exit(f'snippets.py: no snippet {name} (the docs changed: reconfigure)')
        pathlib.Path(out).write_text(translation_unit(found[0]))
    elif cmd == 'check':
        configured = sorted(argv[3:])
        now = sorted(f'{s.name}:{s.lang}:{s.kind}:{s.path}' for s in snippets)
        for p in problems:
            print(p)
        if configured != now:
            print('the snippets changed since meson configured the build (reconfigure): '
                  f'configured {configured}, now {now}')
        if problems or configured != now:
            sys.exit(1)
        print(f'{len(snippets)} snippets, every C/C++ block marked')
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main(sys.argv)
