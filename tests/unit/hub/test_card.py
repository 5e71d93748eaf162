import pytest

from gitd.hub.card import CardError, card_tags, parse_card


def test_front_matter_is_parsed():
    card = parse_card("---\nlicense: mit\ntags: [a, b]\nlibrary_name: transformers\nlanguage: en\n---\n# Title\n")
    assert card["license"] == "mit"
    assert card_tags(card) == ["a", "b", "transformers", "en", "license:mit"]


@pytest.mark.parametrize("text", ["# no front matter\n", "---\n---\n", "---\nunterminated: true\n"])
def test_no_card(text):
    assert parse_card(text) == {}


@pytest.mark.parametrize("text", ["---\nkey: [unclosed\n---\n", "---\n- a list\n---\n"])
def test_bad_card(text):
    with pytest.raises(CardError):
        parse_card(text)


BOMB = "---\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [" + ", ".join([f"*{p}"] * 9) + "]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "---\n"


def test_regression_card_alias_bomb_is_refused():
    """354 bytes of front matter expanded to a 691 MB cardData answer."""
    assert len(BOMB) < 400
    with pytest.raises(CardError, match="anchors"):
        parse_card(BOMB)
    with pytest.raises(CardError, match="aliases"):
        parse_card("---\nb: *a\n---\n")


def test_card_size_and_depth_are_capped():
    with pytest.raises(CardError, match="larger than 100"):
        parse_card("---\n" + "k: v\n" * 50 + "---\n", max_yaml=100)
    with pytest.raises(CardError, match="nested"):
        parse_card("---\nk: " + "[" * 100 + "]" * 100 + "\n---\n")


def test_card_values_become_json_data():
    card = parse_card("---\ndate: 2024-01-02\nbin: !!binary aGk=\ninf: .inf\nn: 1\n---\n")
    assert card == {"date": "2024-01-02", "bin": "aGk=", "inf": "inf", "n": 1}


def test_many_tags_cost_linear_time():
    card = {"tags": [f"t{i}" for i in range(50_000)] * 2}
    assert len(card_tags(card)) == 50_000
