"""Tests for pymodelkit.pack.ignore: patternmatcher v0.6.0 semantics, ignorefile.ReadAll, kit's Matches (#1280)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymodelkit.errors import PackError
from pymodelkit.pack.ignore import IgnoreMatcher, PatternMatcher, _compile, read_ignore_patterns

# kitops-ml/kitops@3904b1b99f6d766801435c6b0dcc12b0dedf8e28:pkg/lib/filesystem/ignore/ignore_test.go, TestIgnoreMatches:
# (name, kitignore, layer paths, path, current layer path, ignored)
KIT_MATCHES_CASES = [
    ("Ignores files in directory", ["dir1"], [], "dir1/subdir1/subdir2/file.txt", "", True),
    ("Ignores files with wildcard", ["dir1/*.txt"], [], "dir1/testfile.txt", "", True),
    ("Ignores files with '**' wildcard", ["**/testfile.txt"], [], "dir1/subdir1/subdir2/testfile.txt", "", True),
    ("Can explicitly include files", ["dir1", "!dir1/testfile.txt"], [], "dir1/testfile.txt", "", False),
    ("Test intersecting layers exclusion", [], ["main", "main/subdir"], "main/subdir/testfile.txt", "main", True),
    (
        "Test intersecting layers inclusion",
        [],
        ["main", "main/subdir"],
        "main/subdir/testfile.txt",
        "main/subdir",
        False,
    ),
    ("Test sibling file sharing a prefix with a layer path", [], [".", "data"], "database.txt", ".", False),
    (
        "Test sibling directory sharing a prefix with a layer path",
        [],
        ["a", "a/data"],
        "a/data-v2/file.txt",
        "a",
        False,
    ),
    (
        "Test intersecting layers inclusion with kitignore",
        ["**/testfile.txt"],
        ["main", "main/subdir"],
        "main/subdir/testfile.txt",
        "main/subdir",
        True,
    ),
]


@pytest.mark.parametrize(("name", "kitignore", "layers", "path", "layer", "ignored"), KIT_MATCHES_CASES)
def test_kit_matches_cases(
    name: str, kitignore: list[str], layers: list[str], path: str, layer: str, ignored: bool
) -> None:
    assert IgnoreMatcher(kitignore, layers).matches(path, layer) is ignored


# moby/patternmatcher patternmatcher_test.go TestMatches: (pattern, text, matches). The upstream table marks each
# case fail/exact/inexact; MatchesOrParentMatches passes for exact and inexact.
PATTERNMATCHER_CASES = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**/", "file/", True),
    ("**", "/", True),
    ("**/", "/", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**", "dir/file/", True),
    ("**/", "dir/file/", True),
    ("**/**", "dir/file", True),
    ("**/**", "dir/file/", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        True,
    ),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\\\", "a\\", True),
    ("a\\*b", "a*b", True),
]

PATTERNMATCHER_MULTI_CASES = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (
        ["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        False,
    ),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
]


@pytest.mark.parametrize(("pattern", "text", "expected"), PATTERNMATCHER_CASES)
def test_patternmatcher_matches_table(pattern: str, text: str, expected: bool) -> None:
    assert PatternMatcher([pattern]).matches_or_parent_matches(text) is expected


@pytest.mark.parametrize(("patterns", "text", "expected"), PATTERNMATCHER_MULTI_CASES)
def test_patternmatcher_multi_pattern_table(patterns: list[str], text: str, expected: bool) -> None:
    assert PatternMatcher(patterns).matches_or_parent_matches(text) is expected


# patternmatcher_test.go matchTests (Go's filepath.Match cases, run through patternmatcher): (pattern, text, matches);
# None = the pattern is rejected with ErrBadPattern.
FILEPATH_MATCH_CASES = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", None),
    ("[-]", "-", None),
    ("[x-]", "x", None),
    ("[x-]", "-", None),
    ("[x-]", "z", None),
    ("[-x]", "x", None),
    ("[-x]", "-", None),
    ("[-x]", "a", None),
    ("\\", "a", None),
    ("[a-b-c]", "a", None),
    ("[", "a", None),
    ("[^", "a", None),
    ("[^bc", "a", None),
    ("a[", "a", None),
    ("a[", "ab", None),
    ("*x", "xxx", True),
]


@pytest.mark.parametrize(("pattern", "text", "expected"), FILEPATH_MATCH_CASES)
def test_filepath_match_table(pattern: str, text: str, expected: bool | None) -> None:
    if expected is None:
        with pytest.raises(PackError) as caught:
            PatternMatcher([pattern])
        assert str(caught.value) == f'syntax error in pattern "{pattern}"'
    else:
        assert PatternMatcher([pattern]).matches_or_parent_matches(text) is expected


# patternmatcher_test.go compileTests: (pattern, match type, Go regular expression when the type is regexp).
COMPILE_CASES = [
    ("*", "regexp", "^[^/]*$"),
    ("file*", "regexp", "^file[^/]*$"),
    ("*file", "regexp", "^[^/]*file$"),
    ("a*/b", "regexp", "^a[^/]*/b$"),
    ("**", "suffix", ""),
    ("**/**", "regexp", "^(.*/)?.*$"),
    ("dir/**", "prefix", ""),
    ("**/dir", "suffix", ""),
    ("**/dir2/*", "regexp", "^(.*/)?dir2/[^/]*$"),
    ("**/dir2/**", "regexp", "^(.*/)?dir2/.*$"),
    ("**file", "suffix", ""),
    ("**/file*txt", "regexp", "^(.*/)?file[^/]*txt$"),
    ("**/**/*.txt", "regexp", "^(.*/)?(.*/)?[^/]*\\.txt$"),
    ("a[b-d]e", "regexp", "^a[b-d]e$"),
    (".*", "regexp", "^\\.[^/]*$"),
    ("abc.def", "exact", ""),
    ("abc?def", "regexp", "^abc[^/]def$"),
    ("**/foo/bar", "suffix", ""),
    ("a(b)c/def", "exact", ""),
    ("a.|)$(}+{bc", "exact", ""),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "exact", ""),
]
_KINDS = {"exact": 0, "prefix": 1, "suffix": 2, "regexp": 3}


@pytest.mark.parametrize(("pattern", "kind", "go_regex"), COMPILE_CASES)
def test_compile_table(pattern: str, kind: str, go_regex: str) -> None:
    compiled = _compile(pattern, False)
    assert compiled.kind == _KINDS[kind]
    assert compiled.go_regex == go_regex


def test_pattern_whose_regexp_is_invalid_fails_when_evaluated() -> None:
    # regression case of patternmatcher (moby/moby#52203): "l-O" is a reversed range for Go's regexp only.
    matcher = PatternMatcher(["[Local-Only]/"])
    for _ in range(2):
        with pytest.raises(PackError) as caught:
            matcher.matches_or_parent_matches("x")
        assert str(caught.value) == 'syntax error in pattern "[Local-Only]"'


def test_go_regexp_escapes_keep_their_go_meaning() -> None:
    # patternmatcher hands "\x" on to Go's regexp, so these are regexp escapes, not glob escapes.
    assert PatternMatcher(["\\x41"]).matches_or_parent_matches("A") is True
    assert PatternMatcher(["a\\d"]).matches_or_parent_matches("a7") is True
    assert PatternMatcher(["a\\d"]).matches_or_parent_matches("ad") is False
    assert PatternMatcher(["[[:digit:]]x"]).matches_or_parent_matches("5x") is True


def test_star_inside_class_becomes_part_of_regexp_class() -> None:
    # "[*]" compiles to ^[[^/]*]$: a class of '[', '^', '/' repeated, then a literal ']'.
    assert _compile("[*]", False).go_regex == "^[[^/]*]$"
    matcher = PatternMatcher(["[*]"])
    assert matcher.matches_or_parent_matches("]") is True
    assert matcher.matches_or_parent_matches("[^]") is True
    assert matcher.matches_or_parent_matches("*") is False


def test_negated_class_and_wildcards_do_not_match_newline() -> None:
    assert PatternMatcher(["a[^b]c"]).matches_or_parent_matches("a\nc") is False
    assert PatternMatcher(["a?c"]).matches_or_parent_matches("a\nc") is False
    assert PatternMatcher(["a?c"]).matches_or_parent_matches("a\tc") is True


def test_regexp_end_anchor_is_end_of_text() -> None:
    # Go's "$" is \z: a trailing newline does not end the match (Python's "$" would accept "ab\n" for "^a.$").
    assert PatternMatcher(["a?"]).matches_or_parent_matches("ab\n") is False
    assert PatternMatcher(["a?"]).matches_or_parent_matches("ab") is True


def test_exclusions_last_match_wins_and_parent_matching() -> None:
    matcher = PatternMatcher(["docs", "!docs/README.md"])
    assert matcher.has_exclusions is True
    assert matcher.matches_or_parent_matches("docs/README.md") is False
    assert matcher.matches_or_parent_matches("docs/other.md") is True
    # exclusions match through parents too: "docs/README.md" re-includes everything below it
    assert matcher.matches_or_parent_matches("docs/README.md/deeper") is False
    assert PatternMatcher(["!fileutils.go", "*.go"]).matches_or_parent_matches("fileutils.go") is True
    assert PatternMatcher(["*.go", "!fileutils.go"]).matches_or_parent_matches("fileutils.go") is False
    assert PatternMatcher(["docs", "config", ""]).has_exclusions is False


def test_patterns_are_trimmed_and_cleaned() -> None:
    matcher = PatternMatcher(["  ./dir/sub/../x/ ", "  !dir/x/keep  "])
    assert matcher.has_exclusions is True
    assert matcher.matches_or_parent_matches("dir/x/file") is True
    assert matcher.matches_or_parent_matches("dir/x/keep") is False


def test_lone_exclamation_mark_is_an_error() -> None:
    with pytest.raises(PackError) as caught:
        PatternMatcher(["!"])
    assert str(caught.value) == 'illegal exclusion pattern: "!"'


def test_read_ignore_patterns_follows_ignorefile_rules() -> None:
    text = (
        "\ufeff# comment\n"
        "  # not a comment: the # is not first\n"
        "\n"
        "   \t\n"
        "/abs/path/\r\n"
        "! spaced/./negation \n"
        "a/../b\n"
        "/\n"
        "//x\n"
        "\x1ckeep\n"
        "last"
    )
    assert read_ignore_patterns(text) == [
        "# not a comment: the # is not first",
        "abs/path",
        "!spaced/negation",
        "b",
        "/",
        "x",
        "\x1ckeep",
        "last",
    ]


def test_read_ignore_patterns_bom_only_on_first_line() -> None:
    assert read_ignore_patterns("\ufeffa\n\ufeffb\n") == ["a", "\ufeffb"]


def test_read_ignore_patterns_rejects_overlong_line() -> None:
    with pytest.raises(PackError) as caught:
        read_ignore_patterns("x" * 65536)
    assert str(caught.value) == "bufio.Scanner: token too long"
    assert read_ignore_patterns("x" * 65535) == ["x" * 65535]


def test_ignore_matcher_load_without_kitignore(tmp_path: Path) -> None:
    matcher = IgnoreMatcher.load(tmp_path, [])
    assert matcher.has_exclusions is False
    assert matcher.matches("file.txt", ".") is False
    for fixed in ("Kitfile", "kitfile", ".kitfile", ".kitignore"):
        assert matcher.matches(fixed, ".") is True
    assert matcher.matches("sub/Kitfile", ".") is False


def test_ignore_matcher_load_reads_kitignore(tmp_path: Path) -> None:
    (tmp_path / ".kitignore").write_bytes(b"\xef\xbb\xbf*.log\n!keep.log\n!Kitfile\n")
    matcher = IgnoreMatcher.load(tmp_path, ["./data/"])
    assert matcher.has_exclusions is True
    assert matcher.matches("debug.log", ".") is True
    assert matcher.matches("keep.log", ".") is False
    assert matcher.matches("Kitfile", ".") is True  # the fixed patterns come last
    assert matcher.matches("data/x.bin", ".") is True
    assert matcher.matches("data/x.bin", "data") is False
    assert matcher.matches(" ./data/x.bin ", "./data/") is False


def test_ignore_matcher_load_rejects_invalid_pattern(tmp_path: Path) -> None:
    (tmp_path / ".kitignore").write_text("ok\n[\n")
    with pytest.raises(PackError) as caught:
        IgnoreMatcher.load(tmp_path, [])
    assert str(caught.value) == 'invalid .kitignore file: syntax error in pattern "["'
    (tmp_path / ".kitignore").write_text("!\n")
    with pytest.raises(PackError) as caught:
        IgnoreMatcher.load(tmp_path, [])
    assert str(caught.value) == 'invalid .kitignore file: illegal exclusion pattern: "!"'


def test_ignore_matcher_load_kitignore_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".kitignore").mkdir()
    with pytest.raises(PackError) as caught:
        IgnoreMatcher.load(tmp_path, [])
    assert str(caught.value) == f"failed to read .kitignore file: read {tmp_path / '.kitignore'}: is a directory"


def test_other_layers_exclude_by_whole_path_element() -> None:
    matcher = IgnoreMatcher([], [".", "data", "models/v1"])
    assert matcher.matches("database.txt", ".") is False
    assert matcher.matches("data-v2/file", ".") is False
    assert matcher.matches("data", ".") is True
    assert matcher.matches("data/file", ".") is True
    assert matcher.matches("models/v1/w.bin", "models") is True
    assert matcher.matches("models/v10/w.bin", "models") is False
    # "." never excludes anything from another layer: every layer is within it.
    assert matcher.matches("data/file", "data") is False


_SEGMENTS = st.sampled_from(["a", "b", "ab", ".x", "a.b", "c d"])
_GLOBS = st.sampled_from(["a", "b", "a/b", "*", "**", "a/*", "**/b", "*.b", "a/**", "!a/b", "!**/ab", "c?d", "[ab]"])


@settings(max_examples=300, deadline=None)
@given(patterns=st.lists(_GLOBS, min_size=1, max_size=5),
       paths=st.lists(st.lists(_SEGMENTS, min_size=1, max_size=4).map("/".join), min_size=1, max_size=12))
def test_answers_do_not_depend_on_the_paths_asked_before(patterns: list[str], paths: list[str]) -> None:
    """The matcher remembers its parent-directory tests for the last directory asked about: a sequence of paths
    (several in one directory, as a walk asks) gets the answers a fresh matcher gives each path alone."""
    if all(pattern.startswith("!") for pattern in patterns):
        patterns = ["a", *patterns]
    reused = PatternMatcher(patterns)
    for path in [*paths, *sorted(paths)]:
        assert reused.matches_or_parent_matches(path) == PatternMatcher(patterns).matches_or_parent_matches(path), path
