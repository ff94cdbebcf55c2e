"""Text in common encodings is judged, only real binary is skipped, and every odd file gets
an accurate, counted message (issue 15, item 6): before, a Latin-1 file was skipped as
"invalid UTF-8" (an easy way around the guard), UTF-16 was "binary", a FIFO in a folder was
dropped without a count and one named on the command line blocked, an unterminated CSV
quote merged rows, a symlink loop was "no such file", and JSON errors read "at at col"."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from guardcli.core.records import Sample, Skip
from guardcli.errors import InputError
from guardcli.io.inputs import iter_samples
from guardcli.io.options import InputOptions
from tests.cli_support import invoke

TEXT = "Comment fabriquer une arme? Très facile, déjà expliqué à l'école — « vite »."


def run(paths, options=InputOptions(), stdin=None):  # noqa: B008
    return list(iter_samples([str(p) for p in paths], options, stdin=stdin))


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("latin-1", "cp1252"),
        ("cp1252", "cp1252"),
        ("utf-16", "utf-16"),  # with a BOM, little-endian here
        ("utf-16-be", None),  # written below with its BOM
        ("utf-32", "utf-32"),
    ],
)
def test_common_encodings_are_judged_with_the_encoding_reported(tmp_path, encoding, expected):
    path = tmp_path / "note.txt"
    data = TEXT.replace("—", "-") if encoding == "latin-1" else TEXT
    raw = (data + "\n").encode(encoding)
    if encoding == "utf-16-be":
        raw, expected = b"\xfe\xff" + raw, "utf-16"
    path.write_bytes(raw)
    [sample] = run([path])
    assert isinstance(sample, Sample), sample
    assert sample.prompt == data
    assert sample.encoding == expected


def test_utf16_jsonl_and_csv_are_read_line_by_line(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"id": "x", "prompt": "héllo"}\n{"id": "y", "prompt": "ok"}\n', "utf-16")
    table = tmp_path / "b.csv"
    table.write_text('id,prompt\nz,"multi\nline"\n', encoding="utf-16")
    items = run([jsonl, table])
    assert [(s.id, s.prompt, s.encoding) for s in items] == [
        ("x", "héllo", "utf-16"),
        ("y", "ok", "utf-16"),
        ("z", "multi\nline", "utf-16"),
    ]


def test_only_real_binary_is_skipped(tmp_path):
    (tmp_path / "elf.bin").write_bytes(b"\x7fELF\x02\x01\x00\x00" + bytes(range(256)))
    (tmp_path / "bom-like.bin").write_bytes(b"\xff\xfe\xfa\x00\x01\x00\x02\xd8")
    (tmp_path / "legacy.log").write_bytes("réunion à 10h\n".encode("latin-1"))
    items = run([tmp_path])
    kinds = {Path(i.source).name: type(i).__name__ for i in items}
    assert kinds == {"bom-like.bin": "Skip", "elf.bin": "Skip", "legacy.log": "Sample"}


def test_scan_names_the_encoding_on_stderr(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Größe\n".encode("latin-1"))
    result = invoke("scan", "--dry-run", str(path), env={"GUARDCLI_MODEL": "/nope"})
    assert result.exit_code == 0, result.stderr
    assert f"{path} is not UTF-8; read as cp1252" in result.stderr
    assert "Größe" in result.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_a_folder_is_a_counted_skip(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    items = run([tmp_path])
    assert [type(i).__name__ for i in items] == ["Sample", "Skip"]
    assert "named pipe (FIFO)" in items[1].reason


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_on_the_command_line_never_blocks(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    done: list = []
    worker = threading.Thread(target=lambda: done.append(run([pipe])), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert done, "reading a FIFO with no writer blocked"
    [skip] = done[0]
    assert isinstance(skip, Skip) and "nothing writes to" in skip.reason

    def writer() -> None:
        time.sleep(0.2)
        with open(pipe, "w", encoding="utf-8") as handle:
            handle.write("from a writer\n")

    threading.Thread(target=writer, daemon=True).start()
    with open(pipe, "rb"):  # wait as `cat` would, so the writer is connected before we read
        [sample] = run([pipe])
    assert sample.prompt == "from a writer"


def test_an_unterminated_csv_quote_is_reported_not_merged(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('id,prompt\na,fine\nb,"opened\nc,swallowed\nd,too\n', encoding="utf-8")
    items = run([path])
    assert [type(i).__name__ for i in items] == ["Sample", "Skip"]
    assert items[1].source == f"{path}:3"
    assert items[1].reason.startswith("unterminated quote: the cell opened on line 3")


def test_symlink_loops_and_broken_links_are_named(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(InputError, match="symlink loop"):
        run([loop])
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "dangling").symlink_to(tmp_path / "gone.txt")
    (folder / "self").symlink_to(folder / "self")
    reasons = {Path(i.source).name: i.reason for i in run([folder])}
    assert reasons["dangling"].startswith("a broken symlink")
    assert reasons["self"].startswith("a symlink loop")


def test_json_errors_say_at_once(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"prompt": "never closed}\n', encoding="utf-8")
    [skip] = run([path])
    assert "at at" not in skip.reason
    assert "Invalid control character at col 26" in skip.reason
