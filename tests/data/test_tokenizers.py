import json

import numpy as np
import pytest

from rnnkit.data import UNK, CharTokenizer, DataError, Tokenizer, WordTokenizer, make_tokenizer


def test_char_vocabulary_has_unk_at_zero_and_sorted_characters():
    tok = CharTokenizer.from_text("hello\nworld")
    assert tok.tokens[0] == UNK
    assert tok.tokens[1:] == sorted(set("hello\nworld"))
    assert len(tok) == 1 + len(set("hello\nworld"))


def test_char_round_trip_and_int64_ids():
    text = "ROMEO: But soft!\nWhat light — ümlaut 😀"
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert tok.decode(ids) == text


def test_char_encode_matches_the_plain_dictionary_lookup():
    text = "the quick brown fox jumps over the lazy dog\nTHE END."
    tok = CharTokenizer.from_text(text, min_count=2)
    expected = [tok.index.get(c, 0) for c in text]
    assert tok.encode(text).tolist() == expected


def test_unknown_characters_map_to_unk_and_decode_as_unk():
    tok = CharTokenizer.from_text("abc")
    ids = tok.encode("abz")
    assert ids[-1] == 0
    assert tok.decode(ids) == "ab" + UNK


def test_strict_encode_names_the_unknown_characters():
    tok = CharTokenizer.from_text("ROMEO: hello")
    with pytest.raises(DataError, match=r"prime: characters not in the model's vocabulary: 'ж', '€'"):
        tok.encode("ROMEO жж€", strict=True, name="prime")
    assert tok.encode("ROMEO", strict=True).tolist() == tok.encode("ROMEO").tolist()


def test_min_count_and_max_size_cut_the_vocabulary():
    text = "aaaabbbcc d"
    assert CharTokenizer.from_text(text, min_count=3).tokens == [UNK, "a", "b"]
    # max_size counts <unk>: the two most frequent characters stay
    assert CharTokenizer.from_text(text, max_size=3).tokens == [UNK, "a", "b"]
    assert CharTokenizer.fit(text).tokens == CharTokenizer.from_text(text).tokens


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_count": 0}, "min_count: expected an integer >= 1"),
        ({"max_size": 1}, "max_size: expected an integer >= 2"),
        ({"min_count": 50}, "min_count 50 keeps no characters"),
    ],
)
def test_bad_vocabulary_options_are_errors(kwargs, match):
    with pytest.raises(DataError, match=match):
        CharTokenizer.from_text("abc", **kwargs)


def test_empty_text_cannot_build_a_vocabulary():
    with pytest.raises(DataError, match="empty text"):
        CharTokenizer.from_text("")
    with pytest.raises(DataError, match="empty text"):
        WordTokenizer.from_text("   \t ")


def test_decode_rejects_ids_outside_the_vocabulary():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(DataError, match=r"ids: expected values in \[0, 4\)"):
        tok.decode([1, 9])
    assert tok.decode([]) == ""


def test_word_split_keeps_contractions_elisions_punctuation_and_newlines():
    text = "Don't stop, Romeo!\nO'er the hills -- self-substantial; 'tis 'gainst"
    assert WordTokenizer.split(text) == [
        "Don't", "stop", ",", "Romeo", "!", "\n", "O'er", "the", "hills", "-", "-", "self", "-", "substantial", ";",
        "'tis", "'gainst",
    ]


def test_word_decode_spacing_is_sensible():
    text = "Don't stop, Romeo!\nWhat (light) is this? 'Tis done; go: self-substantial, he said 'so'."
    tok = WordTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    tok = WordTokenizer.from_text("spleen,--\n  indented   line")
    assert tok.decode(tok.encode("spleen,--\n  indented   line")) == "spleen,--\nindented line"
    spanish = "Y él le dijo: ¿Qué es esto? ¡Oíd! «Dios» dijo: “Sea la luz”."
    tok = WordTokenizer.from_text(spanish)
    assert tok.decode(tok.encode(spanish)) == spanish


def test_word_strict_encode_names_unknown_words():
    tok = WordTokenizer.from_text("to be or not to be")
    with pytest.raises(DataError, match=r"prime: words not in the model's vocabulary: 'that', 'question'"):
        tok.encode("to be that question", strict=True, name="prime")


def test_contains_and_len():
    tok = WordTokenizer.from_text("to be or not to be")
    assert tok.contains("be") and "not" in tok and not tok.contains("question")
    assert len(tok) == 5


@pytest.mark.parametrize("cls", [CharTokenizer, WordTokenizer])
def test_to_dict_is_plain_json_and_round_trips(cls):
    tok = cls.from_text("It is the east, and Juliet is the sun.\n")
    d = json.loads(json.dumps(tok.to_dict()))
    assert d["kind"] == cls.kind and d["tokens"][0] == UNK
    again = Tokenizer.from_dict(d)
    assert type(again) is cls and again == tok
    assert cls.from_dict(d) == tok


def test_from_dict_errors_say_what_is_wrong():
    with pytest.raises(DataError, match="unknown tokenizer kind 'bpe'"):
        Tokenizer.from_dict({"kind": "bpe", "tokens": [UNK]})
    with pytest.raises(DataError, match="'tokens' list"):
        Tokenizer.from_dict({"kind": "char"})
    with pytest.raises(DataError, match="tokens\\[0\\] must be '<unk>'"):
        Tokenizer.from_dict({"kind": "char", "tokens": ["a", "b"]})
    with pytest.raises(DataError, match="cannot be loaded as CharTokenizer"):
        CharTokenizer.from_dict({"kind": "word", "tokens": [UNK, "the"]})
    with pytest.raises(DataError, match="single characters"):
        Tokenizer.from_dict({"kind": "char", "tokens": [UNK, "ab"]})
    with pytest.raises(DataError, match="duplicate tokens"):
        CharTokenizer([UNK, "a", "a"])


def test_make_tokenizer_picks_the_kind():
    assert isinstance(make_tokenizer("word", "a b"), WordTokenizer)
    with pytest.raises(DataError, match=r"tokenizer: expected one of \['abc', 'char', 'word'\]"):
        make_tokenizer("bytes", "a b")


# ---- ABC notation -------------------------------------------------------------------------------

ABC_TUNE = ('M:6/8\nL:1/8\nK:Dmix\n|:A|d2e fed|"Am"^c\'2 _B,/2 z3/2 (3ABc [K:G] !trill!g>f|1 =F,,4 ::\n'
            "[CEG]2 {g}a//b- b>>c|2 d3 :|]\n")


def test_abc_round_trip_keeps_every_character():
    from rnnkit.data.tokenizers import AbcTokenizer

    tok = AbcTokenizer.from_text(ABC_TUNE)
    assert tok.decode(tok.encode(ABC_TUNE)) == ABC_TUNE
    assert "".join(AbcTokenizer.split(ABC_TUNE)) == ABC_TUNE


def test_abc_tokens_are_the_units_of_the_notation():
    from rnnkit.data.tokenizers import AbcTokenizer

    tokens = AbcTokenizer.split(ABC_TUNE)
    assert tokens[:6] == ["M:6/8", "\n", "L:1/8", "\n", "K:Dmix", "\n"]   # header fields whole
    for unit in ("|:", "d", "2", "^c'", "_B,", "/2", "z", "3/2", "(3", "[K:G]", "!trill!", ">", "|1", "=F,,", "::",
                 "//", ">>", ":|]", '"Am"', "|2"):
        assert unit in tokens, unit
    assert "=" not in tokens and "^" not in tokens  # accidentals stay with their note


def test_abc_is_a_registered_tokenizer_that_round_trips_through_json():
    tok = make_tokenizer("abc", ABC_TUNE)
    again = Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again == tok and again.kind == "abc"


def test_an_abc_prime_outside_the_vocabulary_names_the_token():
    tok = make_tokenizer("abc", ABC_TUNE)
    with pytest.raises(DataError, match="'K:Bb'"):
        tok.encode("M:6/8\nK:Bb\n", strict=True, name="--prime")
