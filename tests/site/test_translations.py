"""The Spanish catalogue is complete and the committed .mo matches the .po it was compiled from;
every string the code marks for translation is in it, and the patient's templates show no text
that is not marked."""

import contextlib
import gettext
import re
import shutil
from pathlib import Path

from django.core.management import call_command
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "locale" / "es" / "LC_MESSAGES"
TEMPLATES = ROOT / "templates"
# What a patient sees: the shared pages and pieces, booking, accounts, emails, the clinic's decision.
PATIENT_TEMPLATES = sorted(
    [
        *TEMPLATES.glob("*.html"),
        *TEMPLATES.glob("booking/**/*.*"),
        *TEMPLATES.glob("registration/**/*.*"),
        TEMPLATES / "triage" / "patient_decision.html",
    ]
)


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


def test_the_catalogue_has_every_string_the_code_marks(tmp_path):
    """`makemessages` over a copy of the code adds nothing untranslated: a string marked for
    translation (page, email, photo reason, upload check) without a Spanish text fails here."""
    for folder in ("portal", "triage", "templates", "locale"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    with override_settings(LOCALE_PATHS=[tmp_path / "locale"]), contextlib.chdir(tmp_path):
        call_command("makemessages", locale=["es"], no_location=True, no_wrap=True, verbosity=0)

    fresh = po_entries(tmp_path / "locale" / "es" / "LC_MESSAGES" / "django.po")

    untranslated = [msgid for msgid, translation in fresh.items() if not all(translation)]
    assert not untranslated, f"run makemessages (see docs/patient-journey.md, Languages) and translate: {untranslated}"


def unmarked_text(template):
    """Words a template shows outside {% translate %} and {% blocktranslate %}: text between tags
    and the alt, title, placeholder and aria-label attributes."""
    source = template.read_text(encoding="utf-8")
    for pattern in (
        r"{% comment %}.*?{% endcomment %}",
        r"{% blocktranslate.*?{% endblocktranslate %}",
        r"{%.*?%}",
        r"{{.*?}}",
        r"<script.*?</script>",
    ):
        source = re.sub(pattern, " ", source, flags=re.S)
    attributes = re.findall(r'\b(?:alt|title|placeholder|aria-label)="([^"]*)"', source)
    between_tags = re.sub(r"<[^>]*>", "\n", source).splitlines()
    return [text.strip() for text in [*between_tags, *attributes] if re.search(r"[A-Za-z]{2,}", text)]


def test_patient_templates_show_no_text_unmarked_for_translation():
    assert len(PATIENT_TEMPLATES) > 30
    unmarked = {template.relative_to(TEMPLATES).as_posix(): unmarked_text(template) for template in PATIENT_TEMPLATES}
    assert not {name: texts for name, texts in unmarked.items() if texts}
