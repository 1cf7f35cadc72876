"""The fine-tuner's repr (its hyperparameters, as scikit-learn shows them) and its training log."""

import re

from sklearn.base import clone
from tiny_finetune import make_clf, make_data, make_tiny_backbone

from sktransfer import FineTuneClassifier
from sktransfer.finetune._display import EpochLog

ANSI = re.compile(r"\x1b\[")


def test_repr_shows_the_hyperparameters_before_and_after_fit():
    clf = FineTuneClassifier(model="tiny_convnet", weights=None, lr=1e-3, max_epochs=1, verbose=0)
    expected = "FineTuneClassifier(lr=0.001, max_epochs=1, model='tiny_convnet', verbose=0, weights=None)"
    assert repr(clf) == expected
    X, y = make_data()
    assert repr(clf.fit(X, y)) == expected  # no module dump once initialised
    assert repr(clone(clf)) == expected


def test_repr_of_a_network_passed_in_names_its_class_only():
    clf = make_clf(make_tiny_backbone(), optimizer__weight_decay=0.1)
    text = repr(clf)
    assert "model=Backbone(...)" in text and "optimizer__weight_decay=0.1" in text
    assert "\n" not in text and len(text) < 300


def test_the_log_is_plain_text_with_the_same_columns_every_epoch(capsys):
    # stdout is captured here, not a terminal: no colour codes; the activation cache's
    # cache_dur (first epoch only) stays in the history but out of the table.
    X, y = make_data()
    clf = make_clf(make_tiny_backbone(), verbose=1, max_epochs=3).fit(X, y)
    out = capsys.readouterr().out
    assert not ANSI.search(out)
    lines = [line for line in out.splitlines() if line.strip()]
    header, rows = lines[0], lines[2:]
    assert set(lines[1]) == {"-", " "}  # the rule under the header
    assert "cache_dur" not in header and len(rows) == 3
    assert all(len(row.split()) == len(header.split()) for row in rows)
    assert "cache_dur" in clf.history[0]


def test_the_log_colours_best_values_when_asked(capsys):
    X, y = make_data()
    make_clf(make_tiny_backbone(), verbose=1, max_epochs=2, callbacks__print_log=EpochLog(color=True)).fit(X, y)
    assert ANSI.search(capsys.readouterr().out)
