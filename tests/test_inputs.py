"""Files, folders and stdin -> Samples and Skips, on real files in tmp_path."""

from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path

import pytest

from guardcli.core.prompt import INSTRUCTION, format_pair
from guardcli.core.records import Sample, Skip
from guardcli.errors import GuardError, InputError
from guardcli.io.inputs import iter_samples
from guardcli.io.options import InputOptions

OPTS = InputOptions()


def run(paths, options=OPTS, stdin=None) -> list[Sample | Skip]:
    return list(iter_samples([str(p) for p in paths], options, stdin=stdin))


def samples(items) -> list[Sample]:
    return [item for item in items if isinstance(item, Sample)]


def skips(items) -> list[Skip]:
    return [item for item in items if isinstance(item, Skip)]


def jsonl(*records) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def bench(prompt: str, response: str | None) -> dict:
    return {"instruction": INSTRUCTION, "input": format_pair(prompt, response), "output": "x"}


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.txt").write_text("What is 2+2?\n\n", encoding="utf-8")
    (root / "b.md").write_text("# Notes\r\n\r\nSecond paragraph\r\n", encoding="utf-8")
    (root / "bench.json").write_text(
        json.dumps([bench("How do I bake?", "Like this."), bench("Hurt someone", None)]),
        encoding="utf-8",
    )
    chat = {
        "id": "chat-1",
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "last"}, {"type": "image"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "reply"}]},
        ],
    }
    (root / "chats.jsonl").write_text(
        jsonl({"id": "c1", "prompt": "hello", "response": "hi"})
        + '{"prompt": "x" "response": 1}\n'  # line 2: malformed
        + "\n"  # line 3: blank, ignored
        + jsonl(chat)  # line 4
        + jsonl({"text": "no prompt here", "meta": 1})  # line 5
        + jsonl({"prompt": 42})  # line 6
        + jsonl({"prompt": "no id, null response", "response": None}),  # line 7
        encoding="utf-8",
    )
    (root / "data.csv").write_text(
        'id,prompt,response\nr1,"multi\nline, with comma",\nr2,plain,"an answer"\n',
        encoding="utf-8",
    )
    (root / "empty.txt").write_text("  \n\n", encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (root / "latin1.txt").write_bytes("ok\nstill ok\ncafé\n".encode("latin-1"))
    (root / "nofield.csv").write_text("question,answer,lang\nq,a,en\n", encoding="utf-8")
    (root / ".hidden.txt").write_text("never read", encoding="utf-8")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD.txt").write_text("never read", encoding="utf-8")
    sub = root / "sub"
    sub.mkdir()
    (sub / "blob.bin").write_bytes(b"\xff\xfe\xfa no NUL but not UTF-8")
    (sub / "notes.log").write_text("\ufeffa log line\n", encoding="utf-8")
    (sub / "loop").symlink_to(root, target_is_directory=True)  # must not hang
    return root


def test_mixed_folder(mixed: Path):
    items = run([mixed])
    d = str(mixed)
    got = [
        (type(item).__name__, item.source, item.id if isinstance(item, Sample) else item.reason)
        for item in items
    ]
    assert got == [
        ("Sample", f"{d}/a.txt", f"{d}/a.txt"),
        ("Sample", f"{d}/b.md", f"{d}/b.md"),
        ("Sample", f"{d}/bench.json#1", f"{d}/bench.json#1"),
        ("Sample", f"{d}/bench.json#2", f"{d}/bench.json#2"),
        ("Sample", f"{d}/chats.jsonl:1", "c1"),
        (
            "Skip",
            f"{d}/chats.jsonl:2",
            "invalid JSON (Expecting ',' delimiter at col 16) - fix or remove the line",
        ),
        ("Sample", f"{d}/chats.jsonl:4", "chat-1"),
        (
            "Skip",
            f"{d}/chats.jsonl:5",
            "no 'prompt' field (keys: text, meta) - use --prompt-field NAME",
        ),
        ("Skip", f"{d}/chats.jsonl:6", "'prompt' is a number, not a string - fix the record"),
        ("Sample", f"{d}/chats.jsonl:7", f"{d}/chats.jsonl:7"),
        ("Sample", f"{d}/data.csv:2", "r1"),
        ("Sample", f"{d}/data.csv:4", "r2"),
        ("Skip", f"{d}/empty.txt", "empty file - nothing to scan"),
        ("Skip", f"{d}/image.png", "binary file - not text; exclude it with --exclude"),
        ("Sample", f"{d}/latin1.txt", f"{d}/latin1.txt"),  # judged, read as Windows-1252
        (
            "Skip",
            f"{d}/nofield.csv",
            "no 'prompt' column (columns: question, answer, lang) - use --prompt-field NAME",
        ),
        ("Skip", f"{d}/sub/blob.bin", "binary file - not text; exclude it with --exclude"),
        ("Sample", f"{d}/sub/notes.log", f"{d}/sub/notes.log"),
    ]
    by_source = {item.source: item for item in samples(items)}
    assert by_source[f"{d}/a.txt"].prompt == "What is 2+2?"
    assert by_source[f"{d}/a.txt"].encoding == ""  # UTF-8
    latin1 = by_source[f"{d}/latin1.txt"]
    assert (latin1.prompt, latin1.encoding) == ("ok\nstill ok\ncafé", "cp1252")
    assert by_source[f"{d}/a.txt"].response is None
    assert by_source[f"{d}/b.md"].prompt == "# Notes\n\nSecond paragraph"
    assert by_source[f"{d}/bench.json#1"].prompt == "How do I bake?"
    assert by_source[f"{d}/bench.json#1"].response == "Like this."
    assert by_source[f"{d}/bench.json#2"].response is None
    assert by_source[f"{d}/chats.jsonl:1"].response == "hi"
    assert by_source[f"{d}/chats.jsonl:4"].prompt == "last"  # the LAST user turn
    assert by_source[f"{d}/chats.jsonl:4"].response == "reply"
    assert by_source[f"{d}/chats.jsonl:7"].response is None
    assert by_source[f"{d}/data.csv:2"].prompt == "multi\nline, with comma"
    assert by_source[f"{d}/data.csv:2"].response is None  # empty cell
    assert by_source[f"{d}/data.csv:4"].response == "an answer"
    assert by_source[f"{d}/sub/notes.log"].prompt == "a log line"  # BOM dropped


def test_include_and_exclude(mixed: Path):
    only_jsonl = run([mixed], InputOptions(include=("*.jsonl",)))
    assert {item.source.split(":")[0] for item in only_jsonl} == {f"{mixed}/chats.jsonl"}

    relative = run([mixed], InputOptions(include=("sub/*.log",)))
    assert [item.source for item in relative] == [f"{mixed}/sub/notes.log"]

    pruned = run([mixed], InputOptions(exclude=("sub", "*.csv", "*.png", "latin1.*")))
    sources = {item.source.split(":")[0].split("#")[0] for item in pruned}
    assert sources == {
        f"{mixed}/{name}" for name in ("a.txt", "b.md", "bench.json", "chats.jsonl", "empty.txt")
    }


def test_a_file_named_explicitly_is_always_read(mixed: Path):
    named = mixed / "a.txt"
    items = run([named], InputOptions(exclude=("*.txt",), include=("*.csv",)))
    assert [(item.id, item.prompt) for item in items] == [(str(named), "What is 2+2?")]
    hidden = run([mixed / ".hidden.txt"])
    assert [item.prompt for item in hidden] == ["never read"]


def test_explicit_unknown_suffix_is_text(tmp_path: Path):
    (tmp_path / "prompt").write_text("no suffix at all", encoding="utf-8")
    (tmp_path / "bad.log").write_bytes(b"fine\n\xff\n")
    noise = random.Random(0).randbytes(2000).replace(b"\0", b"").replace(b"\n", b"")
    (tmp_path / "worse.log").write_bytes(b"fine\n" + noise + b"\n")
    items = run([tmp_path / "prompt", tmp_path / "bad.log", tmp_path / "worse.log"])
    assert items[0].prompt == "no suffix at all"
    assert (items[1].prompt, items[1].encoding) == ("fine\nÿ", "cp1252")
    assert isinstance(items[2], Skip) and items[2].reason.startswith("not text at line 2")


def test_split_lines_and_paragraphs(tmp_path: Path):
    path = tmp_path / "p.txt"
    path.write_text("one\n\n  \ntwo a\ntwo b\r\n\n\nthree\n", encoding="utf-8")
    by_line = run([path], InputOptions(split="lines"))
    assert [(s.source, s.id, s.prompt) for s in by_line] == [
        (f"{path}:1", f"{path}:1", "one"),
        (f"{path}:4", f"{path}:4", "two a"),
        (f"{path}:5", f"{path}:5", "two b"),
        (f"{path}:8", f"{path}:8", "three"),
    ]
    by_paragraph = run([path], InputOptions(split="paragraphs"))
    assert [(s.source, s.prompt) for s in by_paragraph] == [
        (f"{path}:1", "one"),
        (f"{path}:4", "two a\ntwo b"),
        (f"{path}:8", "three"),
    ]
    blank = tmp_path / "blank.txt"
    blank.write_text("\n \n", encoding="utf-8")
    assert run([blank], InputOptions(split="lines")) == [
        Skip(str(blank), "empty file - nothing to scan")
    ]


def test_split_does_not_touch_structured_files(tmp_path: Path):
    path = tmp_path / "x.jsonl"
    path.write_text(jsonl({"prompt": "a\nb"}), encoding="utf-8")
    assert [s.prompt for s in run([path], InputOptions(split="lines"))] == ["a\nb"]


def test_jsonl_field_options_and_id_types(tmp_path: Path):
    path = tmp_path / "x.jsonl"
    path.write_text(
        jsonl(
            {"q": "question", "a": "answer", "key": 7},
            {"q": "second", "key": None},
            {"q": "third", "a": ["not", "text"]},
        ),
        encoding="utf-8",
    )
    options = InputOptions(prompt_field="q", response_field="a", id_field="key")
    items = run([path], options)
    assert items[0] == Sample(id="7", prompt="question", response="answer", source=f"{path}:1")
    assert items[1].id == f"{path}:2"
    assert items[2] == Skip(f"{path}:3", "'a' is a list, not a string - fix the record")


def test_messages_edge_cases(tmp_path: Path):
    path = tmp_path / "m.jsonl"
    path.write_text(
        jsonl(
            {"messages": [{"role": "user", "content": "only a question"}]},
            {"messages": [{"role": "system", "content": "no user"}]},
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "tool", "content": "not the assistant"},
                ]
            },
        ),
        encoding="utf-8",
    )
    items = run([path])
    assert (items[0].prompt, items[0].response) == ("only a question", None)
    assert items[1] == Skip(f"{path}:2", "no 'user' turn in 'messages' - nothing to scan")
    assert (items[2].prompt, items[2].response) == ("q", None)


def test_json_single_object_list_and_junk(tmp_path: Path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"prompt": "single"}), encoding="utf-8")
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps([{"prompt": "a"}, 3, {"id": "z", "prompt": "b"}]), encoding="utf-8")
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"prompt": "a"},\n  oops\n]', encoding="utf-8")
    items = run([one, mixed, broken])
    assert items == [
        Sample(id=str(one), prompt="single", source=str(one)),
        Sample(id=f"{mixed}#1", prompt="a", source=f"{mixed}#1"),
        Skip(f"{mixed}#2", "a JSON number, not an object - items must be {...}"),
        Sample(id="z", prompt="b", source=f"{mixed}#3"),
        Skip(str(broken), "invalid JSON (Expecting value at line 3 col 3) - fix the file"),
    ]


def test_tsv_and_big_cells(tmp_path: Path):
    path = tmp_path / "x.TSV"
    big = "y" * 300_000  # over the csv module's default 128 KiB cell limit
    path.write_text(f"prompt\tresponse\nhi, there\t{big}\n", encoding="utf-8")
    [item] = run([path])
    assert (item.prompt, item.response, item.id) == ("hi, there", big, f"{path}:2")


def test_csv_other_prompt_column_and_short_rows(tmp_path: Path):
    path = tmp_path / "x.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["Text", "Reply"], ["a", "b"], ["only prompt"], [], ["", "no prompt"]])
    items = run([path], InputOptions(prompt_field="Text", response_field="Reply"))
    assert items == [
        Sample(id=f"{path}:2", prompt="a", response="b", source=f"{path}:2"),
        Sample(id=f"{path}:3", prompt="only prompt", response=None, source=f"{path}:3"),
        Skip(f"{path}:5", "empty prompt - nothing to scan"),
    ]


def test_duplicate_ids_get_suffixes(tmp_path: Path):
    first = tmp_path / "a.jsonl"
    first.write_text(jsonl(*({"id": "x", "prompt": str(i)} for i in range(3))), encoding="utf-8")
    second = tmp_path / "b.jsonl"
    second.write_text(jsonl({"id": "x#2", "prompt": "3"}, {"id": "y", "prompt": "4"}), "utf-8")
    ids = [item.id for item in run([first, second])]
    assert ids == ["x", "x#2", "x#3", "x#2#2", "y"]
    assert len(set(ids)) == len(ids)


def test_same_file_twice_keeps_ids_unique(tmp_path: Path):
    path = tmp_path / "q.txt"
    path.write_text("hi", encoding="utf-8")
    assert [item.id for item in run([path, path])] == [str(path), f"{path}#2"]


def test_missing_path_fails_before_anything_is_read(tmp_path: Path):
    good = tmp_path / "good.txt"
    good.write_text("fine", encoding="utf-8")
    with pytest.raises(InputError, match="nope.txt: no such file or directory") as caught:
        iter_samples([str(good), str(tmp_path / "nope.txt")], OPTS)  # raises at the call
    assert isinstance(caught.value, GuardError)


def test_stdin_twice_is_refused():
    with pytest.raises(InputError):
        iter_samples(["-", "-"], OPTS, stdin=io.StringIO("x"))


def test_bad_options_are_refused():
    with pytest.raises(GuardError):
        iter_samples([], InputOptions(split="words"))
    with pytest.raises(GuardError):
        iter_samples([], InputOptions(stdin_format="xml"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_skipped(tmp_path: Path):
    path = tmp_path / "secret.txt"
    path.write_text("x", encoding="utf-8")
    path.chmod(0)
    [skip] = run([path])
    assert skip.source == str(path)
    assert "Permission denied" in skip.reason


def test_os_error_is_skipped_with_its_reason(tmp_path: Path, monkeypatch):
    import guardcli.io.inputs as inputs

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    path = tmp_path / "secret.txt"
    path.write_text("x", encoding="utf-8")
    monkeypatch.setattr(inputs, "open", refuse, raising=False)
    assert run([path]) == [
        Skip(str(path), "cannot read (Permission denied) - check the path and its permissions")
    ]


# ---- stdin -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '\n{"id": "a", "prompt": "p", "response": "r"}\n{"prompt": "q"}\n',
            [("a", "<stdin>:2", "p", "r"), ("<stdin>:3", "<stdin>:3", "q", None)],
        ),
        (
            '  [{"prompt": "p"}, {"prompt": "q", "id": 5}]',
            [("<stdin>#1", "<stdin>#1", "p", None), ("5", "<stdin>#2", "q", None)],
        ),
        (
            "just a question\nover two lines\n\n",
            [("<stdin>", "<stdin>", "just a question\nover two lines", None)],
        ),
        ("{curly text} is not JSON\n", [("<stdin>", "<stdin>", "{curly text} is not JSON", None)]),
        (  # what `jq . file.jsonl` prints: pretty objects one after another
            '{\n  "prompt": "p1"\n}\n{\n  "prompt": "p2"\n}\n',
            [("<stdin>#1", "<stdin>#1", "p1", None), ("<stdin>#2", "<stdin>#2", "p2", None)],
        ),
        ('{\n  "prompt": "only"\n}\n', [("<stdin>", "<stdin>", "only", None)]),
    ],
)
def test_stdin_auto_detection(text, expected):
    items = run(["-"], stdin=io.StringIO(text))
    assert [(s.id, s.source, s.prompt, s.response) for s in items] == expected


def test_stdin_explicit_formats():
    as_text = run(["-"], InputOptions(stdin_format="text"), io.StringIO('{"prompt": "x"}\n'))
    assert [s.prompt for s in as_text] == ['{"prompt": "x"}']
    as_csv = run(["-"], InputOptions(stdin_format="csv"), io.StringIO("prompt\na\nb\n"))
    assert [(s.id, s.prompt) for s in as_csv] == [("<stdin>:2", "a"), ("<stdin>:3", "b")]
    lines = run(["-"], InputOptions(split="lines"), io.StringIO("a\n\nb\n"))
    assert [s.source for s in lines] == ["<stdin>:1", "<stdin>:3"]


def test_stdin_bytes_bom_bad_utf8_and_binary():
    with_bom = run(["-"], stdin=io.BytesIO(b'\xef\xbb\xbf{"prompt": "p"}\n'))
    assert [s.prompt for s in with_bom] == ["p"]
    latin = run(["-"], stdin=io.BytesIO(b"line one\nline \xe9\n"))
    assert [(s.prompt, s.encoding) for s in latin] == [("line one\nline é", "cp1252")]
    binary = run(["-"], stdin=io.BytesIO(b"\x00\x01\x02"))
    assert [type(item) for item in binary] == [Skip]


def test_stdin_mixed_with_files(tmp_path: Path):
    path = tmp_path / "f.txt"
    path.write_text("from file", encoding="utf-8")
    items = run([path, "-"], stdin=io.StringIO("from stdin"))
    assert [(s.id, s.prompt) for s in items] == [
        (str(path), "from file"),
        ("<stdin>", "from stdin"),
    ]


class _CountingStdin(io.TextIOBase):
    """A text stream that records how far it has been read."""

    def __init__(self, lines: int) -> None:
        self.total = lines
        self.served = 0

    def readable(self) -> bool:
        return True

    def readline(self, size: int = -1) -> str:
        if self.served == self.total:
            return ""
        self.served += 1
        return json.dumps({"prompt": f"p{self.served}"}) + "\n"


def test_jsonl_is_streamed_not_slurped():
    stream = _CountingStdin(100_000)
    items = iter_samples(["-"], OPTS, stdin=stream)
    first = next(items)
    assert first.prompt == "p1"
    assert stream.served < 10  # the rest is still unread
    assert sum(1 for _ in items) == 99_999


def test_jsonl_file_is_streamed(tmp_path: Path):
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i in range(50_000):
            handle.write(json.dumps({"prompt": f"p{i}"}) + "\n")
        handle.write("\xff broken tail but only reached at the end\n")
    items = iter_samples([str(path)], OPTS)
    assert next(items).prompt == "p0"
    rest = list(items)
    assert len(rest) == 50_000  # 49,999 samples and the bad last line
    assert isinstance(rest[-1], Skip) and rest[-1].source == f"{path}:50001"


def test_lone_surrogate_escape_is_skipped(tmp_path: Path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"prompt": "bad \\ud800 escape"}\n', encoding="utf-8")
    [skip] = run([path])
    assert isinstance(skip, Skip) and "surrogate" in skip.reason


def test_every_sample_has_a_source(mixed: Path):
    assert all(item.source for item in run([mixed]))
