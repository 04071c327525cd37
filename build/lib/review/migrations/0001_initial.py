"""The models moved here from conversations (its migration 0008, which renamed their
tables): only the migration state learns of them; the tables exist already."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('conversations', '0008_move_accounts_and_review_models'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ModelPrice',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('model', models.CharField(max_length=100, unique=True)),
                        ('input_price_per_million', models.DecimalField(decimal_places=4, help_text='Price of one million input (prompt) tokens.', max_digits=12)),
                        ('output_price_per_million', models.DecimalField(decimal_places=4, help_text='Price of one million output (completion) tokens.', max_digits=12)),
                    ],
                    options={
                        'ordering': ['model'],
                    },
                ),
                migrations.CreateModel(
                    name='ReviewAccess',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('viewer_username', models.CharField(max_length=150)),
                        ('conversation_ref', models.PositiveBigIntegerField(help_text="The conversation's number.")),
                        ('owner_username', models.CharField(max_length=150)),
                        ('viewed_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                        ('conversation', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='review_accesses', to='conversations.conversation')),
                        ('viewer', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'review access',
                        'verbose_name_plural': 'review accesses',
                        'ordering': ['-viewed_at'],
                    },
                ),
                migrations.CreateModel(
                    name='Flag',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('note', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('cleared_at', models.DateTimeField(blank=True, null=True)),
                        ('cleared_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('conversation', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='flags', to='conversations.conversation')),
                        ('flagged_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('message', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='flags', to='conversations.message')),
                    ],
                    options={
                        'ordering': ['-created_at'],
                        'indexes': [models.Index(fields=['cleared_at'], name='flag_open')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
