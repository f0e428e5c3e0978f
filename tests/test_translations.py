"""The Spanish catalogue is complete and the committed .mo matches the .po it was compiled from."""
import gettext
import re
from pathlib import Path

LOCALE = Path(__file__).resolve().parent.parent / "locale" / "es" / "LC_MESSAGES"


def po_entries(path):
    """{msgid: msgstr} ({(msgid, plural): (form0, form1)} for plurals), header left out."""
    entries = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields, current = {}, None
        for line in block.splitlines():
            match = re.match(r'^(msgid|msgid_plural|msgstr(?:\[\d\])?) (".*")$', line)
            if match:
                current = match.group(1)
                fields[current] = eval(match.group(2))  # a C-quoted string, as in the .po format
            elif line.startswith('"') and current:
                fields[current] += eval(line)
            elif line.startswith("#,") and "fuzzy" in line:
                fields["fuzzy"] = True
        if fields.get("msgid"):
            assert not fields.get("fuzzy"), f"fuzzy translation: {fields['msgid']!r}"
            if "msgid_plural" in fields:
                entries[(fields["msgid"], fields["msgid_plural"])] = (fields["msgstr[0]"], fields["msgstr[1]"])
            else:
                entries[fields["msgid"]] = fields["msgstr"]
    return entries


def test_every_message_is_translated_and_the_mo_file_is_current():
    entries = po_entries(LOCALE / "django.po")
    with open(LOCALE / "django.mo", "rb") as handle:
        catalogue = gettext.GNUTranslations(handle)

    assert len(entries) > 200
    for msgid, translation in entries.items():
        if isinstance(msgid, tuple):
            assert all(translation), f"untranslated plural: {msgid[0]!r}"
            assert (catalogue.ngettext(*msgid, 1), catalogue.ngettext(*msgid, 2)) == translation, msgid[0]
        else:
            assert translation, f"untranslated: {msgid!r}"
            assert catalogue.gettext(msgid) == translation, f"django.mo is older than django.po: {msgid!r}"
