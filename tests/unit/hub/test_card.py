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
