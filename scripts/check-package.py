#!/usr/bin/env python3
"""Check the publish zip that scripts/package writes, and prove that this checker rejects bad zips.

    check-package.py check --app-root DIR --zip ZIP    check one package against its app root
    check-package.py self-test --zip ZIP               feed the checker broken copies of a good package

`check` fails unless all of these hold:
  1. the entry list is exactly what `func azure functionapp publish` would upload from the app root: every file,
     minus the `.git`/`.vscode` folders, minus `.funcignore`, `.gitignore`, `local.settings.json` and
     `project.lock.json`, minus what `.funcignore` matches as Core Tools reads it (GitIgnoreParser);
  2. only app files are in it: host.json, the handler, policy.json, the static files under www/, and files of
     function folders (a top-level folder with a function.json); source, build output, tooling and docs never are;
  3. every entry is "made by Unix" with mode 100777 on the entry equal to host.json's
     customHandler.description.defaultExecutablePath, and a non-executable regular-file mode (100666) on the rest;
  4. nothing looks like a secret: no local.settings*, *.pem, *.key, *.pfx, .env files, no private-key block, no
     `AccessKey=` with a real-looking value, no HS256 secret written into a settings file;
  5. the handler is an x86-64 ELF whose highest GLIBC_x.y symbol version (objdump -T) is at most 2.28.

The `.funcignore` matcher here is written separately from the one in scripts/package (which ports Core Tools'
regexes): it walks the pattern as a glob and tests Core Tools' word-boundary rule by hand, so a mistake in one of
them shows up as a difference in the entry list.
"""
import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile

GLIBC_BASELINE = (2, 28)
ALWAYS_SKIPPED_DIRS = (".git", ".vscode")
ALWAYS_SKIPPED_FILES = (".funcignore", ".gitignore", "local.settings.json", "project.lock.json")
# What the deployed app may hold besides host.json, the handler and function folders: the policy the handler
# loads at start-up, and the demo page's static files (served by the `index` function).
APP_ROOT_FILES = ("policy.json",)
APP_FOLDERS = ("www/",)
# Never part of a deployment, named here on their own so a `.funcignore` that lost a line is caught (check 2).
FORBIDDEN_PREFIXES = ("src/", "target/", "target-", "tools/", "tests/", "node_modules/", "e2e-js/", "scripts/",
                      ".ci/", ".git/", "dist/", "docs/", "Cargo.toml", "Cargo.lock")
SECRET_NAME_PATTERNS = (
    re.compile(r"^local\.settings.*", re.IGNORECASE),
    re.compile(r".*\.(pem|key|pfx|p12|publishsettings)$", re.IGNORECASE),
    re.compile(r"^\.env(\..*)?$", re.IGNORECASE),
    re.compile(r"^(id_rsa|id_ecdsa|id_ed25519)(\..*)?$"),
    re.compile(r"^\.git-credentials$"),
)
PRIVATE_KEY_BLOCK = re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
# A SignalR AccessKey is base64 of 32+ bytes; placeholders such as <key>, ..., YOUR_KEY do not fit the class.
ACCESS_KEY = re.compile(rb"AccessKey=([A-Za-z0-9+/]{20,}={0,2})")
HS256_SECRET_SETTING = re.compile(r"AUTH_HS256_SECRET[\"']?\s*[:=]\s*[\"']?([^\"'\s;,}]+)")


# --- .funcignore as Core Tools reads it --------------------------------------------------------------------------

def read_funcignore(text):
    """Return (ignore patterns, re-include patterns) after Core Tools' line handling."""
    ignore, include = [], []
    for raw in text.split("\n"):
        line = raw.strip()
        if line == "" or line[0] == "#":
            continue
        target = ignore
        if line[0] == "!":
            target, line = include, line[1:]
        if line[:1] == "/":
            line = line[1:]
        target.append(line)
    return ignore, include


def _glob_tokens(pattern):
    tokens, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            tokens.append("ANY")  # one or more characters, `/` included
            i += 2
        elif pattern[i] == "*":
            tokens.append("SEGMENT")  # one or more characters other than `/`
            i += 1
        else:
            tokens.append(pattern[i])  # everything else, `?` and `[` included, is literal
            i += 1
    return tokens


def _prefix_lengths(tokens, path):
    """Every k for which path[:k] matches the whole token list."""
    ends, seen, todo = set(), set(), [(0, 0)]
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        t, i = state
        if t == len(tokens):
            ends.add(i)
            continue
        token = tokens[t]
        if token == "ANY":
            todo.extend((t + 1, j) for j in range(i + 1, len(path) + 1))
        elif token == "SEGMENT":
            j = i
            while j < len(path) and path[j] != "/":
                j += 1
                todo.append((t + 1, j))
        elif i < len(path) and path[i] == token:
            todo.append((t + 1, i + 1))
    return ends


def _is_word(char):
    return ("a" <= char <= "z") or ("A" <= char <= "Z") or ("0" <= char <= "9") or char == "_"


def _word_boundary(path, k):
    before = k > 0 and _is_word(path[k - 1])
    after = k < len(path) and _is_word(path[k])
    return before != after


def pattern_matches(pattern, path):
    """Core Tools: a pattern matches when some prefix of the path matches it and ends at a word boundary."""
    tokens = _glob_tokens(pattern)
    return any(_word_boundary(path, k) for k in _prefix_lengths(tokens, path))


def published(path, ignore, include):
    if any(pattern_matches(p, path) for p in include):
        return True
    return not any(pattern_matches(p, path) for p in ignore)


def expected_entries(app_root):
    funcignore = os.path.join(app_root, ".funcignore")
    ignore, include = [], []
    if os.path.isfile(funcignore):
        with open(funcignore, encoding="utf-8-sig") as handle:
            ignore, include = read_funcignore(handle.read())
    found = []

    def visit(directory, prefix):
        with os.scandir(directory) as listing:
            children = sorted(listing, key=lambda entry: entry.name)
        for child in children:
            if child.is_dir():
                if child.name.lower() not in ALWAYS_SKIPPED_DIRS:
                    visit(child.path, prefix + child.name + "/")
            elif child.name.lower() not in ALWAYS_SKIPPED_FILES:
                found.append(prefix + child.name)

    visit(app_root, "")
    return sorted(path for path in found if published(path, ignore, include))


# --- the checks --------------------------------------------------------------------------------------------------

def glibc_problems(binary_path, name, log=print):
    try:
        header = subprocess.run(["objdump", "-f", binary_path], capture_output=True, text=True)
        symbols = subprocess.run(["objdump", "-T", binary_path], capture_output=True, text=True)
    except FileNotFoundError:
        return ["objdump is not installed (Debian: apt-get install binutils)"]
    if header.returncode != 0 or "elf64-x86-64" not in header.stdout:
        return [f"{name} is not an x86-64 ELF binary: {(header.stdout + header.stderr).strip()[:200]}"]
    if symbols.returncode != 0:
        return [f"objdump -T {name} failed: {symbols.stderr.strip()[:200]}"]
    versions = {tuple(int(part) for part in v.split("."))
                for v in re.findall(r"\bGLIBC_([0-9]+(?:\.[0-9]+)+)\b", symbols.stdout)}
    if not versions:
        return [f"{name} references no GLIBC_x.y symbol versions: not a glibc-linked binary?"]
    highest = max(versions)
    shown = ".".join(map(str, highest))
    log(f"  {name}: highest GLIBC symbol version {shown} (baseline {'.'.join(map(str, GLIBC_BASELINE))})")
    if highest > GLIBC_BASELINE:
        newer = sorted(".".join(map(str, v)) for v in versions if v > GLIBC_BASELINE)
        return [f"{name} needs GLIBC_{shown} (newer than the {'.'.join(map(str, GLIBC_BASELINE))} baseline; "
                f"versions over it: {', '.join(newer)}): was it built without cargo-zigbuild's .2.28 target?"]
    return []


def check(app_root, zip_path, log=print):
    """Return the list of problems with zip_path as the package of app_root (empty when it is good)."""
    problems = []
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as error:
        return [f"cannot open {zip_path}: {error}"]
    with archive:
        bad_member = archive.testzip()
        if bad_member is not None:
            problems.append(f"corrupt zip member {bad_member}")
        infos = archive.infolist()
        names = [info.filename for info in infos]
        contents = {info.filename: archive.read(info) for info in infos if not info.is_dir()}

    # 1. Entry list.
    if len(set(names)) != len(names):
        problems.append("duplicate zip entries: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    for name in names:
        if name.endswith("/"):
            problems.append(f"folder entry {name!r}: Core Tools zips files only")
        if name.startswith("/") or "\\" in name or ".." in name.split("/"):
            problems.append(f"unsafe entry name {name!r}")
    expected = expected_entries(app_root)
    missing = sorted(set(expected) - set(names))
    extra = sorted(set(names) - set(expected))
    if missing:
        problems.append("entries that publish would upload but the zip lacks: " + ", ".join(missing))
    if extra:
        problems.append("entries in the zip that publish would not upload (see .funcignore): " + ", ".join(extra))

    # host.json and the executable it names.
    exe_path = None
    if "host.json" not in contents:
        problems.append("host.json is not in the package")
    else:
        try:
            host = json.loads(contents["host.json"])
            exe_path = host["customHandler"]["description"]["defaultExecutablePath"]
        except (ValueError, KeyError, TypeError) as error:
            problems.append(f"host.json has no customHandler.description.defaultExecutablePath ({error!r})")
        else:
            if exe_path not in contents:
                problems.append(f"host.json's defaultExecutablePath {exe_path!r} is not an entry of the zip "
                                "(Core Tools compares the string as written, so it gets no execute bit)")

    # 2. Only app files.
    function_folders = {name.split("/")[0] for name in names if re.fullmatch(r"[^/]+/function\.json", name)}
    if not function_folders:
        problems.append("no function folder (<name>/function.json) in the package")
    for name in names:
        if any(name == p or name.startswith(p) for p in FORBIDDEN_PREFIXES) or name.lower().endswith(".md"):
            problems.append(f"{name} must never be deployed: add it to .funcignore")
        elif not (name in ("host.json", exe_path) or name in APP_ROOT_FILES
                  or any(name.startswith(folder) for folder in APP_FOLDERS)
                  or name.split("/")[0] in function_folders and "/" in name):
            problems.append(f"{name} is not an app file (host.json, the handler, {', '.join(APP_ROOT_FILES)}, "
                            f"{', '.join(APP_FOLDERS)}, or a function folder's file): add it to .funcignore, or "
                            "to APP_ROOT_FILES/APP_FOLDERS in scripts/check-package.py if the app needs it")

    # 3. Mode bits.
    executables = []
    for info in infos:
        mode = info.external_attr >> 16
        if info.create_system != 3:
            problems.append(f"{info.filename}: not marked as made by Unix (create_system={info.create_system}), "
                            "so Linux ignores its mode")
        if info.filename == exe_path:
            if mode != 0o100777:
                problems.append(f"{info.filename}: mode {oct(mode)}, expected 0o100777 (the executable)")
        elif mode & 0o111 or not stat.S_ISREG(mode):
            problems.append(f"{info.filename}: mode {oct(mode)}, expected a non-executable file (0o100666)")
        if mode & 0o111:
            executables.append(info.filename)
    log(f"  executable entries: {executables}")

    # 4. Secrets.
    for name, data in contents.items():
        base = name.rsplit("/", 1)[-1]
        if any(p.match(base) for p in SECRET_NAME_PATTERNS):
            problems.append(f"{name}: a file name that holds secrets must not be deployed")
        if PRIVATE_KEY_BLOCK.search(data):
            problems.append(f"{name}: contains a PEM private key block")
        for match in ACCESS_KEY.finditer(data):
            value = match.group(1)
            if len(set(value.rstrip(b"="))) > 4:  # xxxxxxxx… and similar fillers are placeholders
                problems.append(f"{name}: contains AccessKey= with a real-looking value "
                                f"({value[:4].decode()}…, {len(value)} characters)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        for match in HS256_SECRET_SETTING.finditer(text):
            if not re.match(r"<|\.\.\.|…|\$\{?\w+\}?$|%\w+%$|@Microsoft\.KeyVault\(", match.group(1)):
                problems.append(f"{name}: sets AUTH_HS256_SECRET to a value")

    # 5. glibc baseline of the handler.
    if exe_path in contents:
        with tempfile.TemporaryDirectory() as scratch:
            binary = os.path.join(scratch, "handler")
            with open(binary, "wb") as handle:
                handle.write(contents[exe_path])
            problems += glibc_problems(binary, exe_path, log)
            log(f"  {exe_path}: {len(contents[exe_path])} bytes")
    return problems


# --- self-test: broken packages must fail --------------------------------------------------------------------------

def write_zip(path, files, exe_path="handler", modes=None, create_system=3, folder_entries=()):
    modes = modes or {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for folder in folder_entries:
            info = zipfile.ZipInfo(folder)
            info.create_system = create_system
            info.external_attr = (0o040777 << 16) | 0x10
            archive.writestr(info, b"")
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = create_system
            info.external_attr = modes.get(name, 0o100777 if name == exe_path else 0o100666) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)


def matcher_cases():
    """Core Tools' GitIgnoreParser behaviour, worked out by hand from its regexes, as (pattern, path, matches)."""
    return [
        ("target", "target/release/handler", True),
        ("target", "target-pkg/release/handler", True),     # `-` is a word boundary
        ("target", "targets/x", False),
        ("target/", "target/.rustc_info.json", False),      # no boundary between `/` and `.`
        ("target", "target/.rustc_info.json", True),
        ("src", "tools/emulator/src/lib.rs", False),        # anchored at the root
        ("*.md", "README.md", True),
        ("*.md", "docs/deploy.md", False),                  # `*` stays within one segment
        ("**/*.md", "docs/deploy.md", True),
        ("**/*.md", "README.md", False),
        ("local.settings.json*", "local.settings.json.sample", True),
        ("local.settings.json*", "local.settings.json", False),  # `*` is one or more characters
        ("handler.exe", "handler", False),
        ("handle?", "handler", False),                      # `?` is literal
        ("[h]andler", "handler", False),                    # `[` is literal
        (".env", ".env", True),
        (".env", ".envrc", False),
        (".env*", ".envrc", True),
    ]


def self_test(good_zip):
    passed, failed = 0, 0

    def record(ok, description, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"  ok: {description}")
        else:
            failed += 1
            print(f"  FAILED: {description}{': ' + detail if detail else ''}")

    for pattern, path, want in matcher_cases():
        got = pattern_matches(pattern, path)
        record(got == want, f"pattern {pattern!r} {'matches' if want else 'does not match'} {path!r}",
               f"got {got}")

    with zipfile.ZipFile(good_zip) as archive:
        good_files = {info.filename: archive.read(info) for info in archive.infolist()}
    funcignore = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".funcignore")).read()
    exe_path = json.loads(good_files["host.json"])["customHandler"]["description"]["defaultExecutablePath"]
    function_folder = sorted(n.split("/")[0] for n in good_files if n.endswith("/function.json"))[0]
    # Files that exist in a real checkout and that the package must leave out.
    checkout_only = {
        ".funcignore": funcignore.encode(),
        ".gitignore": b"/target\n",
        "local.settings.json": b'{"Values": {"AzureSignalRConnectionString": "Endpoint=https://x;AccessKey=QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MjQyNDI0Mg==;"}}',
        "Cargo.toml": b"[package]\n",
        "README.md": b"# readme\n",
        "src/main.rs": b"fn main() {}\n",
        "target/.rustc_info.json": b"{}",
        "target/release/handler": good_files[exe_path],
        ".git/config": b"[core]\n",
    }

    def run_case(description, expect_substring, files=None, app_extra=None, zip_kwargs=None, funcignore_text=None):
        files = dict(good_files if files is None else files)
        with tempfile.TemporaryDirectory() as scratch:
            root = os.path.join(scratch, "app")
            for name, data in {**checkout_only, **files, **(app_extra or {})}.items():
                path = os.path.join(root, *name.split("/"))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as handle:
                    handle.write(data)
            if funcignore_text is not None:
                with open(os.path.join(root, ".funcignore"), "w") as handle:
                    handle.write(funcignore_text)
            zip_path = os.path.join(scratch, "app.zip")
            write_zip(zip_path, files, exe_path=exe_path, **(zip_kwargs or {}))
            problems = check(root, zip_path, log=lambda _line: None)
        if expect_substring is None:
            record(not problems, description, "; ".join(problems))
        else:
            hit = any(expect_substring in p for p in problems)
            record(hit, description, f"expected a problem containing {expect_substring!r}, got {problems}")

    print("self-test: a copy of the good package passes, and each broken variant fails for its reason")
    run_case("an unchanged copy of the package passes", None)
    run_case("a zip with src/main.rs fails the entry list", "publish would not upload",
             files={**good_files, "src/main.rs": b"fn main() {}\n"})
    missing = {n: d for n, d in good_files.items() if n != f"{function_folder}/function.json"}
    run_case("a zip without a function.json fails the entry list", "the zip lacks",
             files=missing, app_extra={f"{function_folder}/function.json": good_files[f"{function_folder}/function.json"]})
    run_case("a handler without the execute bit fails", "expected 0o100777",
             zip_kwargs={"modes": {exe_path: 0o100666}})
    run_case("an executable host.json fails", "expected a non-executable file",
             zip_kwargs={"modes": {"host.json": 0o100777}})
    run_case("entries not made by Unix fail", "not marked as made by Unix",
             zip_kwargs={"create_system": 0})
    run_case("folder entries fail", "Core Tools zips files only",
             zip_kwargs={"folder_entries": [f"{function_folder}/"]})
    host = json.loads(good_files["host.json"])
    host["customHandler"]["description"]["defaultExecutablePath"] = "./" + exe_path
    run_case("defaultExecutablePath './handler' (not an entry name) fails", "is not an entry of the zip",
             files={**good_files, "host.json": json.dumps(host).encode()})
    key = b"Endpoint=https://demo.service.signalr.net;AccessKey=QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MjQyNDI0Mg==;Version=1.0;"
    run_case("a deployed file holding a real-looking AccessKey fails", "AccessKey= with a real-looking value",
             files={**good_files, f"{function_folder}/settings.txt": key})
    placeholder = b"Endpoint=https://<name>.service.signalr.net;AccessKey=<key>;Version=1.0;"
    run_case("an AccessKey placeholder passes", None,
             files={**good_files, f"{function_folder}/example.txt": placeholder})
    run_case("HS256 secret placeholders and Key Vault references pass", None,
             files={**good_files, f"{function_folder}/example.json":
                    b'{"AUTH_HS256_SECRET": "<32+ random bytes>", "b": "AUTH_HS256_SECRET=${SECRET}",'
                    b' "c": "AUTH_HS256_SECRET=@Microsoft.KeyVault(SecretUri=https://v/secrets/s)"}'})
    run_case("a settings file with an HS256 secret fails", "sets AUTH_HS256_SECRET",
             files={**good_files, f"{function_folder}/settings.json": b'{"AUTH_HS256_SECRET": "hunter2hunter2"}'})
    no_secret_lines = "".join(line for line in funcignore.splitlines(True)
                              if not re.search(r"pem|key|pfx|env", line))
    run_case("a .pem file fails even when .funcignore lets it through", "holds secrets",
             files={**good_files, f"{function_folder}/tls.pem": b"-----BEGIN PRIVATE KEY-----\nMII\n"},
             funcignore_text=no_secret_lines)
    no_src_line = "".join(line for line in funcignore.splitlines(True) if line.strip() != "/src")
    run_case("src/ fails even when .funcignore lets it through", "must never be deployed",
             files={**good_files, "src/main.rs": b"fn main() {}\n"}, funcignore_text=no_src_line)
    run_case("policy.json and static files under www/ pass", None,
             files={**good_files, "policy.json": b'{"rules": []}', "www/index.html": b"<!doctype html>"})
    run_case("an unexpected root file fails", "is not an app file",
             files={**good_files, "notes.txt": b"todo\n"})
    run_case("a non-ELF handler fails", "is not an x86-64 ELF binary",
             files={**good_files, exe_path: b"#!/bin/sh\necho hi\n"})

    # A binary linked against this machine's glibc (newer than 2.28 on current distributions).
    host_glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    compiler = shutil.which("cc") or shutil.which("gcc")
    match = re.search(r"(\d+)\.(\d+)", host_glibc)
    if not match or tuple(map(int, match.groups())) <= GLIBC_BASELINE or compiler is None:
        record(False, "a binary linked against this machine's glibc fails the baseline",
               f"cannot make one here (glibc {host_glibc!r}, C compiler {compiler!r})")
    else:
        with tempfile.TemporaryDirectory() as scratch:
            source = os.path.join(scratch, "new.c")
            with open(source, "w") as handle:
                handle.write("int main(void) { return 0; }\n")
            subprocess.run([compiler, "-o", os.path.join(scratch, "new"), source], check=True)
            with open(os.path.join(scratch, "new"), "rb") as handle:
                new_binary = handle.read()
        run_case(f"a binary linked against this machine's {host_glibc} fails the baseline", "newer than the",
                 files={**good_files, exe_path: new_binary})
    return passed, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    check_parser = sub.add_parser("check")
    check_parser.add_argument("--app-root", required=True)
    check_parser.add_argument("--zip", required=True)
    self_parser = sub.add_parser("self-test")
    self_parser.add_argument("--zip", required=True, help="a package that passes `check`")
    args = parser.parse_args()

    if args.command == "check":
        print(f"check-package: {args.zip} against {os.path.abspath(args.app_root)}")
        problems = check(args.app_root, args.zip)
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        if problems:
            print(f"check-package: {len(problems)} problem(s); the package is not publish-ready")
            return 1
        print("check-package: the package is publish-ready")
        return 0

    passed, failed = self_test(args.zip)
    print(f"package-checks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
