from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("classify", "0002_prediction_timeline"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="model_path",
            field=models.CharField(blank=True, default="", max_length=1000),
        ),
    ]
