"""The information page for patients in English and Spanish; clinics edit it in admin."""

from django.db import migrations

PAGES = {
    "en-gb": {
        "title": "About mpox: what to know before your visit",
        "symptoms": (
            "Mpox usually starts with a rash or spots that turn into blisters or sores, often on the genitals, "
            "around the anus, in the mouth, or on the hands, feet or face. The spots can be painful or itchy.\n\n"
            "Some people first have a fever, headache, aching muscles, tiredness or swollen glands. "
            "Symptoms usually start 5 to 21 days after contact with someone who has mpox."
        ),
        "how_it_spreads": (
            "Mpox spreads through close skin-to-skin contact with someone who has it, including sex, kissing "
            "and cuddling, and through their bedding, towels and clothes. It can also spread through "
            "prolonged face-to-face contact."
        ),
        "before_your_visit": (
            "Cover any spots or sores with clothing or a dressing. Avoid close contact, including sex, until "
            "you have been seen. Do not share towels, bedding or clothes.\n\n"
            "Travel to the clinic by car, on foot or by bicycle if you can; if you use public transport, "
            "wear a face mask and cover your spots. Tell the reception staff your booking reference when you arrive."
        ),
        "vaccination": (
            "A vaccine is available for people at higher risk of mpox. Two doses give the best protection. "
            "Ask the clinic whether it is right for you. Being vaccinated does not rule out mpox, so please "
            "still come to your appointment."
        ),
    },
    "es": {
        "title": "Sobre la mpox: lo que debe saber antes de su visita",
        "symptoms": (
            "La mpox suele empezar con un sarpullido o granos que se convierten en ampollas o llagas, a menudo en "
            "los genitales, alrededor del ano, en la boca o en las manos, los pies o la cara. Pueden doler o picar.\n\n"
            "Algunas personas tienen primero fiebre, dolor de cabeza, dolores musculares, cansancio o ganglios "
            "inflamados. Los síntomas suelen aparecer entre 5 y 21 días después del contacto con alguien que tiene mpox."
        ),
        "how_it_spreads": (
            "La mpox se transmite por el contacto estrecho piel con piel con alguien que la tiene, incluidas las "
            "relaciones sexuales, los besos y los abrazos, y a través de su ropa de cama, toallas y ropa. También "
            "puede transmitirse por un contacto cara a cara prolongado."
        ),
        "before_your_visit": (
            "Cubra los granos o llagas con ropa o un apósito. Evite el contacto estrecho, incluidas las relaciones "
            "sexuales, hasta que le hayan visto. No comparta toallas, ropa de cama ni ropa.\n\n"
            "Si puede, venga a la clínica en coche, a pie o en bicicleta; si usa el transporte público, lleve "
            "mascarilla y cubra los granos. Al llegar, diga su referencia de reserva en recepción."
        ),
        "vaccination": (
            "Hay una vacuna para las personas con mayor riesgo de mpox. Dos dosis dan la mejor protección. "
            "Pregunte en la clínica si es adecuada para usted. Estar vacunado no descarta la mpox, así que venga "
            "a su cita de todos modos."
        ),
    },
}


def add_pages(apps, schema_editor):
    PatientInformation = apps.get_model("booking", "PatientInformation")
    for language, fields in PAGES.items():
        PatientInformation.objects.get_or_create(language=language, defaults=fields)


class Migration(migrations.Migration):
    dependencies = [("booking", "0002_sites_services_schedules_questionnaire_consents")]
    operations = [migrations.RunPython(add_pages, migrations.RunPython.noop)]
