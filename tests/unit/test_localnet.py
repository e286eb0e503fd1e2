"""Loopback ports and condition polling (brokkr_dev.base.localnet)."""

import socket

import pytest

from brokkr_dev.base.localnet import free_port, port_or_free, wait_for


def test_preferred_port_unless_taken():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert port_or_free(taken) != taken
    free = port_or_free(0)
    assert port_or_free(free) == free


def test_free_port_can_be_bound():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))


def test_wait_for_returns_the_first_truthy_value_and_treats_not_yet_errors_as_waiting():
    answers = iter([ConnectionRefusedError("refused"), None, {"ready": True}])

    def condition():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for(condition, 5, "the fake service", interval=0.01) == {"ready": True}


def test_wait_for_names_what_it_waited_for_and_the_last_error():
    def refuse():
        raise ConnectionRefusedError("nothing listens")

    with pytest.raises(TimeoutError, match="waiting for the broker .*nothing listens"):
        wait_for(refuse, 0.05, "the broker", interval=0.01)


def test_wait_for_lets_unexpected_errors_through():
    def broken():
        raise ValueError("a bug, not a slow start")

    with pytest.raises(ValueError, match="a bug"):
        wait_for(broken, 5, "anything", interval=0.01)
