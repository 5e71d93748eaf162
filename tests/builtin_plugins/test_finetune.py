"""The fine-tune plugin's parts that need no daemon: the training config's checks, and how the
training program finds its text in a dataset (datasets' own tables, a tokenizer trained here)."""

from __future__ import annotations

import pytest
from gitd_plugins.finetune.config import TrainConfig, parse_config
from gitd_plugins.finetune.train import JobError, schedule, text_rows

from gitd import HTTPError
from tests.tiny_model import CHAT_TEMPLATE, train_tokenizer


def test_a_config_takes_known_fields_in_range_and_names_the_bad_one():
    assert parse_config(None) == TrainConfig()
    got = parse_config({"method": "full", "epochs": 3, "learning_rate": 1, "max_steps": 10, "text_column": "body"})
    assert (got.method, got.epochs, got.learning_rate, got.max_steps, got.text_column) == ("full", 3, 1.0, 10, "body")
    for bad, words in (([], "a JSON object"), ({"method": "qlora"}, "config.method"),
                       ({"epochs": True}, "config.epochs"), ({"epochs": 0}, "config.epochs"),
                       ({"learning_rate": 0}, "config.learning_rate"), ({"learning_rate": float("nan")}, "rate"),
                       ({"batch_size": 1.5}, "config.batch_size"), ({"lr": 1}, "unknown config field(s) lr")):
        with pytest.raises(HTTPError, match=words.replace("(", r"\(").replace(")", r"\)")) as info:
            parse_config(bad)
        assert info.value.status == 400


def test_the_steps_follow_epochs_and_stop_at_max_steps():
    assert list(schedule(3, 2, 0)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert list(schedule(3, 2, 4)) == [(0, 0), (0, 1), (0, 2), (1, 0)]


def test_the_text_comes_from_a_named_or_a_usual_column_and_none_is_a_clear_error():
    import datasets

    tokenizer = train_tokenizer(256)
    tokenizer.chat_template = CHAT_TEMPLATE
    table = datasets.Dataset.from_dict
    assert text_rows(table({"id": [1, 2], "text": ["a b", "c"]}), "", tokenizer) == ("text", ["a b", "c"])
    assert text_rows(table({"body": ["x", "y"]}), "body", tokenizer) == ("body", ["x", "y"])
    chat = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]]
    column, texts = text_rows(table({"messages": chat}), "", tokenizer)
    assert column == "messages" and "<|user|>\nhi" in texts[0] and "<|assistant|>\nhello" in texts[0]
    assert text_rows(table({"instruction": ["add"], "output": ["sum"]}), "", tokenizer) == ("instruction",
                                                                                          ["add\nsum"])
    with pytest.raises(JobError, match="no usable text column: its columns are a, b"):
        text_rows(table({"a": [1, 2], "b": [3, 4]}), "", tokenizer)
    with pytest.raises(JobError, match="no usable text column"):
        text_rows(table({"text": [1, 2]}), "", tokenizer)  # numbers are not text
    with pytest.raises(JobError, match="the dataset has no column 'body'; its columns are text"):
        text_rows(table({"text": ["x"]}), "body", tokenizer)
