"""The Fish Fillets manifest on a small game tree the tests write: scripts joined with audio by
level and by share group, placeholders and empty lines left out and counted, the level split."""

from collections import Counter

import numpy as np
import pytest

from rnnkit.data import speech
from rnnkit.data.errors import DataError


def write_game(root):
    """Two levels and a share group, in the game's layout; audio files are empty stand-ins
    (the manifest reads names, not sound)."""
    files = {
        "script/barrel/dialogs_cs.lua": '''
dialogId("bar-v-videt0", "font_big", "Somebody from Greenpeace should see this.")
dialogStr("To by měli vidět lidi z Greenpeace.")

dialogId("bar-m-no", "font_small", "Well, you may be right.")
dialogStr("No, \\"možná\\" máš pravdu.")

dialogId("bar-m-cislo", "font_small", "A%1.")
dialogStr("A%1.")
''',
        "script/alibaba/dialogs_cs.lua": '''
dialogId("ali-v-ticho", "font_big", "Quiet.")
dialogStr("")
dialogId("ali-x-hlas", "font_x", "A voice.")
dialogStr("Hlas.")
''',
        "script/share/black_dialogs_cs.lua": 'dialogId("smrt-m-0", "font_small", "Oh, shoot!")\ndialogStr("No a je to.")\n',
        "script/barrel/dialogs_nl.lua": 'dialogId("bar-m-no", "font_small", "Well.")\ndialogStr("Nou.")\n',
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    for audio in ["sound/barrel/cs/bar-v-videt0.ogg", "sound/barrel/cs/bar-m-no.ogg", "sound/barrel/cs/bar-m-cislo.ogg",
                  "sound/barrel/cs/bar-x-gr0.ogg", "sound/alibaba/cs/ali-v-ticho.ogg", "sound/alibaba/cs/ali-x-hlas.ogg",
                  "sound/share/blackjokes/cs/smrt-m-0.ogg", "sound/barrel/nl/bar-m-no.ogg"]:
        (root / audio).parent.mkdir(parents=True, exist_ok=True)
        (root / audio).write_bytes(b"")


def test_lines_are_joined_with_their_audio_and_the_rest_is_counted(tmp_path):
    write_game(tmp_path)
    utterances, left_out = speech.read_manifest(tmp_path, "cs")
    by_id = {u.id: u for u in utterances}
    assert sorted(by_id) == ["ali-x-hlas", "bar-m-no", "bar-v-videt0", "smrt-m-0"]
    assert by_id["bar-m-no"].text == 'No, "možná" máš pravdu.'  # escaped quotes read back
    assert by_id["bar-v-videt0"].english == "Somebody from Greenpeace should see this."
    assert (by_id["bar-m-no"].speaker, by_id["ali-x-hlas"].speaker) == ("m", "x")
    assert by_id["smrt-m-0"].level == "share/blackjokes"
    assert by_id["smrt-m-0"].audio == tmp_path / "sound/share/blackjokes/cs/smrt-m-0.ogg"
    assert left_out == Counter({"placeholder": 1, "no text": 1, "no line": 1})
    dutch, _ = speech.read_manifest(tmp_path, "nl")
    assert [(u.id, u.text) for u in dutch] == [("bar-m-no", "Nou.")]


def test_the_test_split_holds_out_whole_levels_by_their_name(tmp_path):
    write_game(tmp_path)
    utterances, _ = speech.read_manifest(tmp_path, "cs")
    train, test = speech.split_by_level(utterances)
    assert len(train) + len(test) == len(utterances)
    assert not {u.level for u in train} & {u.level for u in test}
    levels = [f"level{i}" for i in range(200)]
    assert 25 < sum(map(speech.held_out, levels)) < 55  # about a fifth


def test_an_unknown_language_is_named():
    with pytest.raises(DataError, match="language: expected one of cs, nl, got 'en'"):
        speech.read_manifest(".", "en")


def test_the_speaker_set_holds_the_two_fish_as_pooled_log_mel_series(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    write_game(tmp_path)
    for audio in tmp_path.glob("sound/**/cs/*.ogg"):
        t = np.arange(4410) / 22050
        soundfile.write(str(audio), (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 22050, format="OGG", subtype="VORBIS")
    (tmp_path / "sound/barrel/cs/bar-v-videt0.ogg").write_bytes(b"broken")  # left out, not a crash
    (train, train_labels), (test, test_labels) = speech.speaker_dataset("cs", tmp_path)
    labels = train_labels + test_labels
    assert sorted(labels) == ["small fish", "small fish"]  # bar-m-no and smrt-m-0; ali-x-hlas is not a fish
    frames = 1 + (4410 - 551) // 220  # 25 ms frames every 10 ms at 22.05 kHz
    assert all(x.shape == (frames // speech.SPEAKER_POOL, 40) for x in train + test)
