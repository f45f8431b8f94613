"""Django 5.2 against a router: `migrate` of contenttypes and auth (tables,
indexes, unique constraints, foreign keys added with ALTER TABLE, all in
its transactional migrations), then ORM work: users, groups and
permissions (many-to-many through foreign keys), nested atomic blocks, and
a foreign key refusing an orphan.

usage: django_app.py PORT
"""
import sys

import django
from django.conf import settings

port = sys.argv[1]
settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": port,
            "NAME": "t",
            "USER": "t",
        }
    },
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    USE_TZ=True,
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import IntegrityError, connection, transaction  # noqa: E402
from django.contrib.auth.models import Group, Permission, User  # noqa: E402

call_command("migrate", verbosity=0)

perms = Permission.objects.filter(content_type__app_label="auth")
assert perms.count() >= 12, perms.count()
editors = Group.objects.create(name="editors")
editors.permissions.set(perms.filter(codename__startswith="change_"))
alice = User.objects.create_user("alice", "alice@example.com", "s3cret")
with transaction.atomic():
    bob = User.objects.create_user("bob")
    try:
        with transaction.atomic():
            User.objects.create_user("carol")
            raise RuntimeError("undo carol")
    except RuntimeError:
        pass
alice.groups.add(editors)
assert sorted(User.objects.values_list("username", flat=True)) == ["alice", "bob"]
assert alice.has_perm("auth.change_user") and not bob.has_perm("auth.change_user")
assert User.objects.filter(groups__name="editors").count() == 1
assert User.objects.get(username="alice").check_password("s3cret")

# The foreign key from user_groups to auth_user holds: no orphan.
try:
    with transaction.atomic():
        with connection.cursor() as c:
            c.execute("INSERT INTO auth_user_groups (user_id, group_id) VALUES (%s, %s)", [999999, editors.id])
    raise AssertionError("an orphan membership was stored")
except IntegrityError:
    pass
print("ok")
