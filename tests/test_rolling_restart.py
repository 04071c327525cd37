"""A rolling restart under a steady load of replies loses none and shows no 502.

Two daphne processes on PostgreSQL and Redis (the machine's, with a database and a key
prefix of the run's own) behind the shipped nginx site, run by an ordinary nginx process;
clients keep loading pages, sending messages and following replies over websockets through
it, while the processes are upgraded one at a time as docs/deployment.md says
(``benchmarks/rolling_restart.py``, whose figures benchmarks/RESULTS.md records).
"""

import psycopg
import pytest
import redis

from benchmarks.nginx import NGINX
from benchmarks.rolling_restart import rolling_restart
from benchmarks.stack import production

POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)"),
]


@pytest.fixture
def services() -> None:
    try:
        psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=2).close()
    except psycopg.OperationalError as error:
        pytest.skip(f"needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust): {error}")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.skip(f"needs Redis on 127.0.0.1:6379: {error}")
    finally:
        client.close()


def test_a_rolling_restart_under_load_fails_no_reply_and_shows_no_502(services):
    result = rolling_restart(production(POSTGRES, REDIS_URL), clients=4, replies_around=2)

    assert result["failures"] == []
    assert result["failed_replies"] == 0
    assert result["replies_during_upgrade"] > 0
    assert [restart["exit_code"] for restart in result["restarts"]] == [0, 0]
    # No client was answered 502 (nor any other error), and nginx logged none.
    assert {answer.split()[1] for answer in result["answers"]} <= {"200", "101"}
    assert result["nginx_5xx"] == 0
    # The sockets of each stopped process dropped, and every page got its socket back.
    assert result["socket_drops"] > 0
    assert result["sockets_lost"] == 0
