"""Credentials for the benchmarks. Lookout is closed by default, so each benchmark gives its
daemon an owner (a hash of PASSWORD in the config) and reaches it with a token."""
import http.cookiejar, json, subprocess, urllib.request

PASSWORD = "bench owner password"
GRANTS = ["view", "playback", "snapshot", "metrics", "control"]


def auth_section(lookout):
    """The config's [auth] section: the owner's hash, made by `lookout hash-password`."""
    digest = subprocess.run([lookout, "hash-password"], input=PASSWORD + "\n", capture_output=True, text=True, check=True)
    return f'[auth]\nadmin_password_hash = "{digest.stdout.strip()}"\n'


def cli_token(lookout, config):
    """A token with every grant, issued on the "device" with `lookout token`."""
    args = [lookout, "--config", config, "token", "--ttl", "1d"] + [a for g in GRANTS for a in ("--grant", g)]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()


def login_token(base, timeout=10):
    """Logs in as the owner at `base` and issues a token (for a device we cannot reach by shell)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    login = urllib.request.Request(base + "/api/login", json.dumps({"user": "admin", "password": PASSWORD}).encode(),
                                   {"Content-Type": "application/json"})
    opener.open(login, timeout=timeout).read()
    issue = urllib.request.Request(base + "/api/tokens", json.dumps({"grants": GRANTS, "ttl": "1d"}).encode(),
                                   {"Content-Type": "application/json", "Origin": base})
    return json.load(opener.open(issue, timeout=timeout))["token"]


def with_token(url, token):
    return url + ("&" if "?" in url else "?") + "token=" + token
