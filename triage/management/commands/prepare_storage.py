from pathlib import Path

from botocore.exceptions import ClientError
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the private photo storage if it is missing: the S3 bucket, or the local folder (mode 700)."

    def handle(self, *args, **options):
        if hasattr(default_storage, "bucket"):  # django-storages' S3Storage
            bucket = default_storage.bucket
            try:
                bucket.meta.client.head_bucket(Bucket=bucket.name)
            except ClientError as error:
                if error.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
                    raise
                bucket.create()
                self.stdout.write(f"Created the bucket {bucket.name}.")
            self.stdout.write(f"Photos are stored in the private bucket {bucket.name}.")
        else:
            Path(default_storage.location).mkdir(mode=0o700, parents=True, exist_ok=True)
            self.stdout.write(f"Photos are stored in the private folder {default_storage.location}.")
