"""corpuslab.sources.files: which files a path contributes, and what happens to links, loops, FIFOs,
special files and files of other formats. Nothing that is not a regular file is ever opened."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from corpuslab.documents import Document
from corpuslab.errors import InputError
from corpuslab.sources.badinput import BadInputLog
from corpuslab.sources.local import LocalConfig, read_local


def read(paths: list[Path | str], **options: object) -> tuple[list[Document], BadInputLog]:
    log = BadInputLog()
    return list(read_local(LocalConfig(paths=[str(path) for path in paths], **options), log)), log


def read_with_deadline(paths: list[Path | str], seconds: float = 20, **options: object) -> tuple[list[Document], BadInputLog]:
    """Read in a thread: if a FIFO were opened, the read would block forever instead of failing."""
    result: list[tuple[list[Document], BadInputLog] | BaseException] = []

    def target() -> None:
        try:
            result.append(read(paths, **options))
        except BaseException as err:  # handed to the test thread
            result.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "reading blocked: something that is not a regular file was opened"
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def examples(log: BadInputLog, reason: str) -> list[str]:
    return [example["file"] for example in log.to_dict()["examples"][reason]]


@pytest.fixture()
def hostile(tmp_path: Path) -> Path:
    """A folder with two good files, a link loop, a self loop, a dangling link, a FIFO and a socket."""
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("first document")
    (root / "sub" / "b.txt").write_text("second document")
    (root / "sub" / "up").symlink_to("..")  # back to the folder that contains it
    (root / "self.txt").symlink_to("self.txt")  # resolves to itself
    (root / "gone.txt").symlink_to("nowhere.txt")
    os.mkfifo(root / "pipe.txt")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock.txt"))
    yield root
    server.close()


def test_links_loops_and_special_files_are_named_and_never_opened(hostile: Path) -> None:
    docs, log = read_with_deadline([hostile])
    assert [doc.text for doc in docs] == ["first document", "second document"]
    assert dict(log.counts) == {"symlink_loop": 2, "dangling_symlink": 1, "special_file": 2}
    assert sorted(examples(log, "symlink_loop")) == [str(hostile / "self.txt"), str(hostile / "sub" / "up")]
    assert examples(log, "dangling_symlink") == [str(hostile / "gone.txt")]
    assert examples(log, "special_file") == [str(hostile / "pipe.txt"), str(hostile / "sock.txt")]
    details = log.to_dict()["examples"]
    assert "nowhere.txt" in details["dangling_symlink"][0]["detail"]
    assert "FIFO" in details["special_file"][0]["detail"] and "socket" in details["special_file"][1]["detail"]
    assert log.dropped == 5


def test_stop_raises_naming_the_first_unreadable_entry(hostile: Path) -> None:
    with pytest.raises(InputError, match="gone.txt.*nowhere.txt.*dangling_symlink"):
        read_with_deadline([hostile], on_bad_input="stop")


def test_recursive_glob_through_a_loop_reads_each_file_once(hostile: Path) -> None:
    docs, log = read_with_deadline([hostile / "**" / "*.txt"])
    assert [doc.text for doc in docs] == ["first document", "second document"]
    # "**" follows the loop 40 levels deep; the loop is reported once, not once per level.
    assert log.counts["symlink_loop"] == 2 and log.counts["special_file"] == 2


def test_a_named_fifo_or_dangling_link_raises(hostile: Path) -> None:
    for name, expected in [("pipe.txt", "FIFO"), ("gone.txt", "does not exist"), ("self.txt", "loop")]:
        with pytest.raises(InputError, match=expected):
            read_with_deadline([hostile / name])


def test_linked_folders_are_followed(tmp_path: Path) -> None:
    shards = tmp_path / "elsewhere"
    shards.mkdir()
    (shards / "c.txt").write_text("a linked document")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("a local document")
    (corpus / "more").symlink_to(shards)
    docs, log = read([corpus])
    assert [doc.text for doc in docs] == ["a local document", "a linked document"]
    assert log.total == 0


def test_files_without_extension_are_read_when_the_format_is_set(tmp_path: Path) -> None:
    # 20 Newsgroups and Enron maildir layouts: numbered files, "1." names, no extension.
    (tmp_path / "alt.atheism").mkdir()
    (tmp_path / "alt.atheism" / "49960").write_text("From: someone\n\nA posting.")
    (tmp_path / "alt.atheism" / "51060").write_text("From: another\n\nA reply.")
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "1.").write_text("Subject: hello\n\nA mail.")
    (tmp_path / "inbox" / "notes.md").write_text("not mail")
    docs, log = read([tmp_path], format="txt", category_from="parent_dir")
    assert [doc.id for doc in docs] == ["alt.atheism/49960", "alt.atheism/51060", "inbox/1."]
    assert [doc.category for doc in docs] == ["alt.atheism", "alt.atheism", "inbox"]
    assert dict(log.counts) == {"other_format_file": 1} and log.dropped == 0  # notes.md, with a reason


def test_record_formats_pass_over_files_without_extension_in_a_folder(tmp_path: Path) -> None:
    # A LICENSE beside JSON lines shards is not data; named explicitly, such a file is read.
    (tmp_path / "part-0").write_text('{"text": "named explicitly"}\n')
    (tmp_path / "LICENSE").write_text("Permission is hereby granted")
    (tmp_path / "a.jsonl").write_text('{"text": "a record"}\n')
    docs, log = read([tmp_path], format="jsonl", on_bad_input="stop")
    assert [doc.text for doc in docs] == ["a record"] and log.counts["other_format_file"] == 2
    assert "set dataset.local.format: txt" in log.to_dict()["examples"]["other_format_file"][0]["detail"]
    assert [doc.text for doc in read([tmp_path / "part-0"], format="jsonl")[0]] == ["named explicitly"]


def test_auto_format_says_how_to_read_files_without_extension(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "49960").write_text("A posting.")
    with pytest.raises(InputError, match="set dataset.local.format: txt"):
        read([tmp_path])
    with pytest.raises(InputError, match="set dataset.local.format: txt"):
        read([tmp_path / "49960"])  # named directly
    (tmp_path / "a.txt").write_text("A document.")
    docs, log = read([tmp_path])
    assert [doc.text for doc in docs] == ["A document."]
    assert log.counts["other_format_file"] == 1
    (example,) = log.to_dict()["examples"]["other_format_file"]
    assert example["file"] == str(tmp_path / "49960") and "set dataset.local.format: txt" in example["detail"]
    assert "set dataset.local.format: txt" in caplog.text  # the warning says it too
