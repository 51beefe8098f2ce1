"""Parallel texts: users' TSV pairs, and the Bible pairs parsed from diatheke's output.

WEB_OUTPUT and RV_OUTPUT are real lines of ``diatheke -b MODULE -f internal -o f -l en -k …``
(sword-text-web 426.0, sword-text-sparv 2.60, diatheke 4.8), copied unchanged; the cases of
``test_clean_osis`` are excerpts of such lines, shortened.
"""

import os
import re
import shutil
import subprocess

import pytest

from rnnkit.data import DataError, catalog
from rnnkit.data.parallel import (
    BIBLE_MISALIGNED,
    BIBLE_MODULES,
    _dump_modules,
    align_verses,
    bible_pairs,
    clean_osis,
    parse_diatheke,
    read_pairs,
)


# ---- read_pairs --------------------------------------------------------------------------------
def write(tmp_path, text: str, name: str = "pairs.tsv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_pairs_splits_at_the_first_tab_and_skips_blank_lines(tmp_path):
    path = write(tmp_path, "I am.\tSoy.\n\n  \n Go away \t Vete \r\nTab\tone\ttwo\n")
    assert read_pairs(path) == (["I am.", "Go away", "Tab"], ["Soy.", "Vete", "one\ttwo"])


@pytest.mark.parametrize("text, error", [
    ("a\tb\nno tab here\n", r":2: no tab between source and target; write each pair as source<TAB>target"),
    ("a\tb\n\n\tb\n", r":3: empty source; put the source sentence before the tab"),
    ("hello\t  \n", r":1: empty target for source 'hello'; give the translation or remove the line"),
    (" \n\n", r": is empty; give a file with some text in it"),
])
def test_read_pairs_errors_name_file_and_line(tmp_path, text, error):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match="^" + re.escape(str(path)) + error):
        read_pairs(path)


def test_read_pairs_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_pairs(tmp_path / "nope.tsv")


# ---- diatheke's output -------------------------------------------------------------------------
WEB_OUTPUT = (
    'Genesis 1:1: <w savlm="strong:H0430">In</w> <w savlm="strong:H0853">the</w> <w savlm="strong:H7225">beginning'
    '</w>, <w savlm="strong:H0430">God</w><note placement="foot" swordFootnote="1"></note><w savlm="strong:H1254">'
    'created</w> <w savlm="strong:H0853">the</w> <w savlm="strong:H8064">heavens</w> <w savlm="strong:H0430">and</w> '
    '<w savlm="strong:H0853">the</w> <w savlm="strong:H0776">earth</w>.\n'
    '<title canonical="true" type="psalm">A Song of Ascents.</title> <lg sID="gen12993"/> '
    '<l level="1" sID="gen12994"/>Psalms 134:1: <w savlm="strong:H2009">Look</w>! <w savlm="strong:H1288">Praise</w> '
    '<w savlm="strong:H3068">Yahweh</w>, <w savlm="strong:H3605">all</w> <w savlm="strong:H3605">you</w> '
    '<w savlm="strong:H5650">servants</w> <w savlm="strong:H1004">of</w> <w savlm="strong:H3068">Yahweh</w>,'
    '<l eID="gen12994" level="1"/> <l level="2" sID="gen12995"/><w savlm="strong:H3605">who</w> '
    '<w savlm="strong:H5975">stand</w> <w savlm="strong:H3068">by</w> <w savlm="strong:H3915">night</w> '
    '<w savlm="strong:H3068">in</w> <w savlm="strong:H3068">Yahweh’s</w> <w savlm="strong:H1004">house</w>! '
    '<l eID="gen12995" level="2"/>\n'
    '<title canonical="true" type="psalm">A Song of Ascents.</title> <lg sID="gen12993"/> '
    '<l level="1" sID="gen12994"/>Psalms 134:2: <w savlm="strong:H5375">Lift</w> <w savlm="strong:H5375">up</w> '
    '<w savlm="strong:H3068">your</w> <w savlm="strong:H3027">hands</w> <w savlm="strong:H3068">in</w> '
    '<w savlm="strong:H0853">the</w> <w savlm="strong:H6944">sanctuary</w>.<l eID="gen12996" level="1"/> '
    '<l level="2" sID="gen12997"/><w savlm="strong:H1288">Praise</w> <w savlm="strong:H3068">Yahweh</w>! '
    '<l eID="gen12997" level="2"/>\n'
    '<title canonical="true" type="psalm">A Song of Ascents.</title> <lg sID="gen12993"/> '
    '<l level="1" sID="gen12994"/>Psalms 135:1: <w savlm="strong:H1984">Praise</w> Yah!<l eID="gen13001" level="1"/> '
    '<l level="2" sID="gen13002"/><w savlm="strong:H1984">Praise</w> <w savlm="strong:H3068">Yahweh’s</w> '
    '<w savlm="strong:H8034">name</w>!<l eID="gen13002" level="2"/> <l level="2" sID="gen13003"/>'
    '<w savlm="strong:H1984">Praise</w> <w savlm="strong:H0853">him</w>, <w savlm="strong:H0853">you</w> '
    '<w savlm="strong:H5650">servants</w> <w savlm="strong:H3068">of</w> <w savlm="strong:H3068">Yahweh</w>, '
    '<l eID="gen13003" level="2"/>\n'
    "(engWEB2015eb)\n"
)
RV_OUTPUT = (
    'Psalms 134:1: <w savlm="strong:H7892">Cántico</w> <w savlm="strong:H4609">gradual</w>. <w savlm="strong:H2009">'
    'MIRAD</w>, <w savlm="strong:H1288">bendecid</w> <w savlm="strong:H3068">á Jehová</w>, <w savlm="strong:H3605">'
    'vosotros todos</w> <w savlm="strong:H5650">los siervos</w> <w savlm="strong:H3068">de Jehová</w>, '
    '<w savlm="strong:H1004">los que en la casa</w> <w savlm="strong:H3068">de Jehová</w> <w savlm="strong:H5975">'
    'estáis</w> <w savlm="strong:H3915">por las noches</w>.\n'
    'Luke 19:1: <w savlm="strong:G2532">Y</w> <w savlm="strong:G1525">HABIENDO entrado</w><transChange type="added">'
    'Jesús</transChange>, <w savlm="strong:G1330">iba pasando</w> <w savlm="strong:G2410">por Jericó</w>;\n'
    'Job 38:4: ¿<w savlm="strong:H0375">Dónde</w> <w savlm="strong:H1961">estabas</w> <w savlm="strong:H3245">'
    'cuando yo fundaba</w> <w savlm="strong:H0776">la tierra</w>? házme<transChange type="added">lo</transChange> '
    '<w savlm="strong:H5046">saber</w>, <w savlm="strong:H0518">si</w> <w savlm="strong:H3045">tienes</w> '
    '<w savlm="strong:H0998">inteligencia</w>.\n'
    'Job 38:39: \n'
    'Revelation of John 22:21: <w savlm="strong:G3588">La</w> <w savlm="strong:G5485">gracia</w> '
    '<w savlm="strong:G2257">de nuestro</w> <w savlm="strong:G2962">Señor</w> '
    '<w lemma="G5547" savlm="strong:G2424 G5547">Jesucristo</w> <w savlm="strong:G3326">sea con</w> '
    '<w savlm="strong:G3956">todos</w> <w savlm="strong:G5216">vosotros</w>. <w savlm="strong:G0281">Amén</w>.  '
    '<chapter eID="Rev.22"/><div eID="gen1256" type="x-p"/> '
    '<div canonical="true" eID="gen1234" osisID="Rev" type="book"/>\n'
    "(spaRV1909eb)\n"
)


def test_parse_diatheke_strips_markup_and_puts_a_psalm_title_in_verse_1():
    verses = parse_diatheke(WEB_OUTPUT)
    assert list(verses) == ["Genesis 1:1", "Psalms 134:1", "Psalms 134:2", "Psalms 135:1"]
    assert verses["Genesis 1:1"] == "In the beginning, God created the heavens and the earth."  # a note was between
    assert verses["Psalms 134:1"] == ("A Song of Ascents. Look! Praise Yahweh, all you servants of Yahweh, "
                                      "who stand by night in Yahweh’s house!")
    # diatheke repeats the preverse on the verses after it: the title belongs to 134:1 only
    assert verses["Psalms 134:2"] == "Lift up your hands in the sanctuary. Praise Yahweh!"
    assert verses["Psalms 135:1"].startswith("Praise Yah! Praise Yahweh’s name!")


def test_parse_diatheke_reina_valera():
    verses = parse_diatheke(RV_OUTPUT)
    assert verses == {
        "Psalms 134:1": "Cántico gradual. MIRAD, bendecid á Jehová, vosotros todos los siervos de Jehová, los que en "
                        "la casa de Jehová estáis por las noches.",
        "Luke 19:1": "Y HABIENDO entrado Jesús, iba pasando por Jericó;",  # </w><transChange> is a space
        "Job 38:4": "¿Dónde estabas cuando yo fundaba la tierra? házmelo saber, si tienes inteligencia.",
        "Job 38:39": "",
        "Revelation of John 22:21": "La gracia de nuestro Señor Jesucristo sea con todos vosotros. Amén.",
    }


def test_parse_diatheke_rejects_a_line_without_a_reference():
    with pytest.raises(DataError, match=r"diatheke output, line 2: no verse reference in 'Genesis one'"):
        parse_diatheke("Genesis 1:1: <w>In</w> the beginning\nGenesis one\n")


@pytest.mark.parametrize("osis, text", [
    # Matthew 19:19 (WEB): two quotations with nothing between them
    ('<q marker="">‘<w savlm="strong:G5091">Honor</w> <w savlm="strong:G3384">mother</w>.’</q><q marker="">'
     '<w savlm="strong:G2532">And</w>, ‘<w savlm="strong:G4572">yourself</w>.’”</q><div eID="gen31050" type="x-p"/>',
     "‘Honor mother.’ And, ‘yourself.’”"),
    # John 8:58 (WEB): the closing quote in a quotation of its own stays attached
    ('<w savlm="strong:G1510">AM</w>.</q><q marker="">”</q><div eID="gen33707" type="x-p"/>', "AM.”"),
    # Song of Solomon 1:4 (WEB): speaker labels are not text
    ('<w savlm="strong:H2315">rooms</w>.<l eID="gen15625" level="2"/> <lg eID="gen15617"/> <speaker>Friends</speaker> '
     '<lg sID="gen15626"/> <l level="1" sID="gen15627"/>We', "rooms. We"),
    # Revelation 22:21 (WEB): the glossary after the end of the book
    ('saints. Amen.  <chapter eID="Rev.22"/><div eID="gen35836" type="x-p"/> <div sID="gen35837" type="glossary"/> '
     '<div sID="gen35839" type="x-p"/> The following words used in the World English Bible', "saints. Amen."),
    # footnotes: with their text (as `-f OSIS` writes them), between words (I Esdras 9:43), before punctuation
    ('God<note placement="foot">1:1 The Hebrew word rendered “God” is “אֱלֹהִ֑ים” (Elohim).</note>created',
     "God created"),
    ('Urias,<note placement="foot" swordFootnote="1"></note>Ezekias', "Urias, Ezekias"),
    ('Israel<note placement="foot" swordFootnote="1"></note>.', "Israel."),
    # line and paragraph marks are spaces; an entity (none in these modules) is decoded
    ('Selah.<l eID="gen9756" type="selah"/><lb type="x-p"/>They &amp; <w>them</w>', "Selah. They & them"),
])
def test_clean_osis(osis, text):
    assert clean_osis(osis) == text


def test_align_verses_keeps_verses_with_text_in_both():
    english = {"Genesis 1:1": "In the beginning", "Tobit 1:1": "The book", "Acts 8:37": "", "Job 39:1": "goats",
               "Jude 1:25": "glory"}
    spanish = {"Genesis 1:1": "En el principio", "Acts 8:37": "Y Felipe", "Job 39:1": "leones", "Jude 1:25": ""}
    assert align_verses(english, spanish) == [("Genesis 1:1", "In the beginning", "En el principio")]
    assert align_verses(english, spanish, skip=()) == [("Genesis 1:1", "In the beginning", "En el principio"),
                                                       ("Job 39:1", "goats", "leones")]


# ---- bible_pairs: the cache, on a fake diatheke ----------------------------------------------------
@pytest.fixture
def fake_bible(monkeypatch, tmp_path):
    """A data cache in tmp_path and a fake ``diatheke`` on PATH that prints the samples above."""
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(catalog, "locate", lambda name: tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for module, sample in zip(BIBLE_MODULES, (WEB_OUTPUT, RV_OUTPUT)):
        (bin_dir / module).write_text(sample, encoding="utf-8")
    fake_diatheke(bin_dir, 'cat "$(dirname "$0")/$2"')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def fake_diatheke(bin_dir, body: str):
    script = bin_dir / "diatheke"
    script.write_text(f"#!/bin/sh\n{body}\n")  # called as: diatheke -b MODULE -f internal …
    script.chmod(0o755)


def test_bible_pairs_builds_the_cache_then_reads_it(fake_bible, tmp_path):
    english, spanish, refs = bible_pairs()
    assert refs == ["Psalms 134:1"] and english[0].startswith("A Song of Ascents.")
    assert spanish == ["Cántico gradual. MIRAD, bendecid á Jehová, vosotros todos los siervos de Jehová, los que en la "
                       "casa de Jehová estáis por las noches."]
    cache = tmp_path / "cache" / "bible" / "pairs.tsv"
    assert cache.read_text(encoding="utf-8") == f"Psalms 134:1\t{english[0]}\t{spanish[0]}\n"
    assert [p.name for p in cache.parent.iterdir()] == ["pairs.tsv"]  # no temporary file left behind
    fake_diatheke(fake_bible, "exit 1")  # the cache is read, diatheke not run
    assert bible_pairs() == (english, spanish, refs)
    cache.unlink()
    with pytest.raises(DataError, match=r"`diatheke -b engWEB2015eb` failed \(no output\); reinstall the packages"):
        bible_pairs()  # a missing cache is rebuilt


def test_bible_pairs_max_words_keeps_pairs_short_on_both_sides(fake_bible, tmp_path):
    cache = tmp_path / "cache" / "bible" / "pairs.tsv"
    cache.parent.mkdir(parents=True)
    cache.write_text("A 1:1\tone two\tuno dos tres\nA 1:2\tone two three\tuno\nA 1:3\tone\tuno\n", encoding="utf-8")
    assert bible_pairs(2) == (["one"], ["uno"], ["A 1:3"])
    assert bible_pairs(3)[2] == ["A 1:1", "A 1:2", "A 1:3"]
    for bad in (0, -1, 2.5, True, "30"):
        with pytest.raises(DataError, match=rf"max_words: expected a positive integer or None, got {bad!r}"):
            bible_pairs(bad)


def test_bible_pairs_damaged_cache_says_to_delete_it(fake_bible, tmp_path):
    cache = tmp_path / "cache" / "bible" / "pairs.tsv"
    cache.parent.mkdir(parents=True)
    cache.write_text("A 1:1\tone\tuno\nA 1:2\tone\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{cache}:2: expected reference<TAB>english<TAB>spanish; .*delete it"):
        bible_pairs()


def test_bible_pairs_failing_diatheke_says_why(fake_bible):
    fake_diatheke(fake_bible, 'echo "$2: no such module" >&2; exit 1')
    with pytest.raises(DataError, match=r"`diatheke -b engWEB2015eb` failed \(engWEB2015eb: no such module\); "
                                        r"reinstall the packages: `apt-get install --reinstall -y sword-text-web"):
        bible_pairs()


def test_bible_pairs_without_diatheke_names_the_install_command(fake_bible, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_bible / "empty"))
    with pytest.raises(DataError, match=r"diatheke is not installed .*run `rnnkit data install bible`"):
        bible_pairs()


def test_bible_not_installed_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(catalog.CATALOG, "bible", catalog.Dataset(**{**vars(catalog.get("bible")),
                                                                     "root": str(tmp_path / "sword")}))
    with pytest.raises(DataError, match=r"data set 'bible' is not installed: run `rnnkit data install bible`"):
        bible_pairs()


def test_debian_install_updates_the_package_lists_when_apt_get_fails(monkeypatch):
    # A fresh system (CI) has no package lists: apt-get cannot find the packages until updated.
    monkeypatch.setattr(catalog.os, "geteuid", lambda: 0, raising=False)
    monkeypatch.setattr(catalog, "locate", lambda name: "/usr/share/sword")
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        failed = len(calls) == 1
        return subprocess.CompletedProcess(cmd, 100 if failed else 0, "", "E: Unable to locate package diatheke\n")

    monkeypatch.setattr(catalog.subprocess, "run", run)
    said = []
    catalog.install("bible", progress=said.append, force=True)
    install = ["apt-get", "install", "-y", "sword-text-web", "sword-text-sparv", "diatheke"]
    assert calls == [install, ["apt-get", "update"], install]
    assert "bible: apt-get update" in said


# ---- the installed modules ---------------------------------------------------------------------
def installed() -> bool:
    try:
        catalog.locate("bible")
    except DataError:
        return False
    return shutil.which("diatheke") is not None


needs_bible = pytest.mark.skipif(not installed(), reason="not installed: rnnkit data install bible")


@needs_bible
def test_the_real_diatheke_output_parses():
    english, spanish = (parse_diatheke(out) for out in _dump_modules(BIBLE_MODULES, "Psalms 3:1-2"))
    assert align_verses(english, spanish) == [
        ("Psalms 3:1", "A Psalm by David, when he fled from Absalom his son. Yahweh, how my adversaries have "
                       "increased! Many are those who rise up against me.",
         "Salmo de David, cuando huía de delante de Absalom su hijo. ¡OH Jehová, cuánto se han multiplicado mis "
         "enemigos! muchos se levantan contra mí."),
        ("Psalms 3:2", "Many there are who say of my soul, “There is no help for him in God.” Selah.",
         "Muchos dicen de mi vida: No hay para él salud en Dios. (Selah.)"),
    ]


@needs_bible
def test_bible_counts():
    # The first call on a machine builds the cache: about 15 s; then 0.2 s.
    english, spanish, refs = bible_pairs()
    assert len(english) == len(spanish) == len(refs) == 30_863
    assert refs[0] == "Genesis 1:1" and refs[-1] == "Revelation of John 22:21"
    assert (english[0], spanish[0]) == ("In the beginning, God created the heavens and the earth.",
                                        "EN el principio crió Dios los cielos y la tierra.")
    assert len(dict.fromkeys(ref.rsplit(" ", 1)[0] for ref in refs)) == 66
    skipped = {f"{b} {c}:{v}" for b, c, first, last in BIBLE_MISALIGNED for v in range(first, last + 1)}
    assert not skipped & set(refs)
    assert sum(len(e.split()) for e in english) == 744_852 and sum(len(s.split()) for s in spanish) == 698_750
    assert len(bible_pairs(max_words=30)[0]) == 22_582
