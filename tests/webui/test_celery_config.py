"""The Celery application's settings that are not Django settings."""

from webui.celery import SQL_BROKER_POLL_SECONDS, app


def test_a_worker_asks_an_sql_broker_for_messages_ten_times_a_second(tmp_path):
    app.loader.import_default_modules()  # configures the app, as a worker does at start
    with app.connection_for_read(f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}") as connection:
        assert connection.transport.polling_interval == SQL_BROKER_POLL_SECONDS == 0.1
