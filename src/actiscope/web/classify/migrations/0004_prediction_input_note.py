from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("classify", "0003_prediction_model_path"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="input_note",
            field=models.CharField(blank=True, default="", max_length=300),
        ),
    ]
