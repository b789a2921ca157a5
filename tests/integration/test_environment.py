"""The application's environment: by default the caller's, without the
variables of the systemd protocols; with --clear-env (clear-env=) only PATH
and what --env (env=) names.  --check shows the resulting environment."""

import json
import os

import pytest

from harness import (assert_one_error_line, query_state, state_env,
                     wait_for_socket)

USAGE = 2
CALLER = {"FOO": "bar", "SSH_AUTH_SOCK": "/tmp/agent.sock",
          "HOME": "/root", "KEEP": "kept", "LISTEN_PID": "1"}


def app_env(spawn, sock, app, *opts):
    s = spawn.start("-n", "-s", sock, *opts, "--", app, extra_env=CALLER)
    wait_for_socket(sock, proc=s)
    return state_env(query_state(sock))


def test_caller_environment_passes_by_default(spawn, sock, app):
    env = app_env(spawn, sock, app, "--env", "SET=1")
    assert env["FOO"] == "bar" and env["SSH_AUTH_SOCK"] == "/tmp/agent.sock"
    assert env["SET"] == "1"
    assert "LISTEN_PID" not in env


def test_clear_env_keeps_only_path_and_what_is_named(spawn, sock, app):
    env = app_env(spawn, sock, app, "--clear-env", "--env", "KEEP",
                  "--env", "SET=a=b c", "--env", "UNSET_IN_CALLER", "-C", "2")
    assert env == {"PATH": env["PATH"], "KEEP": "kept", "SET": "a=b c",
                   "PHP_FCGI_CHILDREN": "2"}, env
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_clear_env_from_the_config_file(spawn, sock, app, tmp):
    conf = tmp / "app.conf"
    conf.write_text("[spawn-fcgi]\nclear-env=true\nenv=KEEP;SET=1\n"
                    "environment=OLD=2\n")
    os.chmod(conf, 0o644)
    env = app_env(spawn, sock, app, "--config", conf)
    assert env == {"PATH": env["PATH"], "KEEP": "kept", "SET": "1",
                   "OLD": "2"}, env


def test_command_line_env_replaces_the_config_list(spawn, sock, app, tmp):
    conf = tmp / "app.conf"
    conf.write_text("[spawn-fcgi]\nclear-env=true\nenv=SET=1\n")
    os.chmod(conf, 0o644)
    env = app_env(spawn, sock, app, "--config", conf, "--env", "FOO")
    assert env == {"PATH": env["PATH"], "FOO": "bar"}, env


@pytest.mark.parametrize("entry", ["", "1X=2", "A-B=1", "=x", "A B"])
def test_bad_env_entry_is_refused(spawn, sock, app, marker, entry):
    r = spawn.run_error("-F", "1", "-s", sock, "--env", entry, "--", app,
                        "--marker", marker)
    assert r.returncode == USAGE, r
    assert_one_error_line(r, "--env")
    assert not marker.exists()


def test_check_shows_the_resulting_environment(spawn, sock, app):
    r = spawn.run("--check", "-s", sock, "--clear-env", "--env", "KEEP",
                  "--env", "SET=1", "--", app, extra_env=CALLER)
    assert r.returncode == 0, r
    assert "environment: 'PATH=" in r.stdout, r
    assert "'KEEP=kept' 'SET=1'\n" in r.stdout, r
    assert "FOO" not in r.stdout, r
    r = spawn.run("--check=json", "-s", sock, "--clear-env", "--env",
                  "SET=1", "--", app, extra_env=CALLER)
    assert r.returncode == 0, r
    env = json.loads(r.stdout)["application"]["environment"]
    assert [e.split("=")[0] for e in env] == ["PATH", "SET"], env
