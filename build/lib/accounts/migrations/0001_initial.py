"""The models moved here from conversations (its migration 0008, which renamed their
tables): only the migration state learns of them; the tables exist already."""

import accounts.models
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('conversations', '0008_move_accounts_and_review_models'),
        ('auth', '0012_alter_user_first_name_max_length'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Invitation',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('token', models.CharField(default=accounts.models._invitation_token, editable=False, max_length=64, unique=True)),
                        ('expires_at', models.DateTimeField()),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('used_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('created_by', models.ForeignKey(editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('group', models.ForeignKey(help_text='The role the new account gets.', on_delete=django.db.models.deletion.PROTECT, to='auth.group')),
                        ('used_by', models.OneToOneField(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='invitation', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='UserLimits',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('messages_per_minute', models.PositiveIntegerField(blank=True, help_text='Empty: WEBCHAT_MESSAGES_PER_MINUTE. 0: unlimited.', null=True)),
                        ('daily_token_quota', models.PositiveBigIntegerField(blank=True, help_text='Empty: WEBCHAT_DAILY_TOKEN_QUOTA. 0: unlimited.', null=True)),
                        ('monthly_token_quota', models.PositiveBigIntegerField(blank=True, help_text='Empty: WEBCHAT_MONTHLY_TOKEN_QUOTA. 0: unlimited.', null=True)),
                        ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='limits', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'limits',
                        'verbose_name_plural': 'limits',
                    },
                ),
                migrations.CreateModel(
                    name='ModelAccess',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('model', models.CharField(max_length=100)),
                        ('group', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='model_access', to='auth.group')),
                    ],
                    options={
                        'verbose_name': 'model access',
                        'verbose_name_plural': 'model access',
                        'ordering': ['group__name', 'model'],
                        'constraints': [models.UniqueConstraint(fields=('group', 'model'), name='one_access_per_group_model')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
