#!/usr/bin/env python3
"""Runs a GitHub Actions workflow's jobs locally, in a minimal Debian 12 root.

Each job's `run:` steps run verbatim, in order, inside ROOT (made by `scripts/fresh-debian.sh
create`) through `scripts/fresh-debian.sh run`, with the environment GitHub gives a step
(GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_WORKSPACE, GITHUB_ACTIONS, CI, the step's `env:`,
the inputs). The `uses:` steps are replaced by their local equivalents:

  actions/checkout             the repository's files copied into a fresh job workspace
  dtolnay/rust-toolchain       nothing: the host's toolchain is mounted read-only (--toolchain)
  Swatinem/rust-cache          nothing: every job builds into one shared target folder
  actions/upload-artifact      the path copied into the artefact store (--store), by name
  actions/download-artifact    artefacts copied out of the store (by name or pattern)
  dawidd6/action-download-artifact   the same, from the store (seed it with --artifact)
  actions/upload-pages-artifact      the path copied into the store as `github-pages`

Any other action, expression or condition this script does not know is an error, so a
workflow change it cannot follow fails loudly instead of being skipped.

Prints one JSON object: per job run, its result, outputs, annotations and step outcomes.
Exits 0 when every job ran (whatever its result), 2 on a usage or workflow error.

  run-workflow.py WORKFLOW --root ROOT --repo DIR --store DIR [--toolchain DIR]
      [--job NAME[:KEY=VALUE,...]]... [--input NAME=VALUE]... [--artifact NAME=DIR]...
      [--target-dir DIR-IN-ROOT] [--rewrite FROM=>TO]...

--job selects jobs in order (a matrix job once per KEY=VALUE set given; the set must be one of
its matrix's combinations). --rewrite replaces text in `run:` scripts (used to restrict a test
command to a subset; every rewrite must apply, or it is an error).
"""

import argparse
import fnmatch
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
FRESH = os.path.join(HERE, "fresh-debian.sh")


class WorkflowError(Exception):
    pass


def copy_tree(src, dst):
    if os.path.isdir(src):
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


class Expr:
    """The subset of GitHub's expression language the workflows use."""

    TOKEN = re.compile(
        r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\))|"
        r"(?P<num>\d+)|(?P<fn>always|failure|success|cancelled)\(\)|"
        r"(?P<name>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*))"
    )

    def __init__(self, context, job_failed):
        self.context = context
        self.job_failed = job_failed

    def lookup(self, dotted):
        value = self.context
        for part in dotted.split("."):
            if not isinstance(value, dict):
                raise WorkflowError(f"unknown context `{dotted}`")
            if part not in value:
                root = dotted.split(".")[0]
                if root in ("inputs", "steps", "needs", "matrix", "env"):
                    return ""  # GitHub yields null for a missing property
                raise WorkflowError(f"unknown context `{dotted}`")
            value = value[part]
        return value

    def evaluate(self, text):
        python = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = self.TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise WorkflowError(f"cannot read the expression `{text}` at {pos}")
            pos = m.end()
            if m.group("str") is not None:
                python.append(repr(m.group("str")[1:-1].replace("''", "'")))
            elif m.group("op"):
                python.append({"&&": " and ", "||": " or ", "!": " not "}.get(m.group("op"), m.group("op")))
            elif m.group("num"):
                python.append(m.group("num"))
            elif m.group("fn"):
                python.append(
                    {"always": "True", "cancelled": "False",
                     "failure": repr(self.job_failed), "success": repr(not self.job_failed)}[m.group("fn")]
                )
            else:
                name = m.group("name")
                if name in ("true", "false"):
                    python.append(str(name == "true"))
                else:
                    python.append(repr(self.lookup(name)))
        return eval(" ".join(python), {"__builtins__": {}}, {})  # noqa: S307 — built from tokens above

    def condition(self, text):
        if text is None:
            return not self.job_failed
        text = str(text).strip()
        if text.startswith("${{") and text.endswith("}}"):
            text = text[3:-2]
        status_fn = re.search(r"\b(always|failure|success|cancelled)\(\)", text)
        value = bool(self.evaluate(text))
        # Without a status function, GitHub adds `success() &&`.
        return value if status_fn else (value and not self.job_failed)

    def substitute(self, text):
        def one(m):
            v = self.evaluate(m.group(1))
            if isinstance(v, bool):
                return "true" if v else "false"
            return "" if v is None else str(v)

        return re.sub(r"\$\{\{(.*?)\}\}", one, str(text))


class Runner:
    def __init__(self, args):
        self.args = args
        with open(args.workflow) as f:
            self.workflow = yaml.safe_load(f)
        # PyYAML reads the key `on` as True.
        self.jobs = self.workflow["jobs"]
        self.inputs = dict(kv.split("=", 1) for kv in args.input)
        # A `type: boolean` input is a boolean in GitHub's `inputs` context, not the string
        # "false" (which would be truthy). Inputs not given stay missing: as on a schedule.
        on = self.workflow.get(True)  # PyYAML reads the key `on` as True
        dispatch = on.get("workflow_dispatch") if isinstance(on, dict) else None
        declared = (dispatch or {}).get("inputs") or {}
        for name, value in self.inputs.items():
            if (declared.get(name) or {}).get("type") == "boolean":
                if value not in ("true", "false"):
                    raise WorkflowError(f"input {name} is a boolean: true or false, not {value!r}")
                self.inputs[name] = value == "true"
        self.rewrites = [r.split("=>", 1) for r in args.rewrite]
        self.rewrites_used = set()
        self.needs = {}
        os.makedirs(args.store, exist_ok=True)
        for spec in args.artifact:
            name, path = spec.split("=", 1)
            copy_tree(path, os.path.join(args.store, name))
        self.counter = itertools.count(1)

    def in_root(self, path_in_root):
        return os.path.join(self.args.root, path_in_root.lstrip("/"))

    def run_in_root(self, workspace, script, env, timeout):
        n = next(self.counter)
        steps_dir = self.in_root("/work/steps")
        os.makedirs(steps_dir, exist_ok=True)
        with open(os.path.join(steps_dir, f"{n}.sh"), "w") as f:
            f.write(script)
        command = [FRESH, "run", self.args.root, "--workdir", workspace]
        if self.args.toolchain:
            command += ["--toolchain", self.args.toolchain]
        for k, v in env.items():
            command += ["--env", f"{k}={v}"]
        command += ["--", f"bash -e /work/steps/{n}.sh"]
        try:
            p = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
            return p.returncode, p.stdout.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            return 124, (e.stdout or b"").decode(errors="replace") + "\n(timed out)"

    def run_job(self, name, matrix):
        job = self.jobs.get(name)
        if job is None:
            raise WorkflowError(f"no job `{name}`; the workflow has {sorted(self.jobs)}")
        container = job.get("container")
        image = container.get("image") if isinstance(container, dict) else container
        if image not in ("debian:12",):
            raise WorkflowError(f"job `{name}` runs in {image!r}; only debian:12 is reproduced here")
        declared = (job.get("strategy") or {}).get("matrix") or {}
        if declared or matrix:
            combos = [dict(zip(declared, c)) for c in itertools.product(*declared.values())]
            if matrix not in combos:
                raise WorkflowError(f"job `{name}`: {matrix} is not one of its matrix combinations {combos}")
        label = name + (f" ({', '.join(f'{k}={v}' for k, v in matrix.items())})" if matrix else "")
        workspace = f"/work/jobs/{next(self.counter)}-{name}"
        os.makedirs(self.in_root(workspace))
        files = {"output": f"/work/files/{next(self.counter)}-output", "summary": f"/work/files/{next(self.counter)}-summary"}
        os.makedirs(self.in_root("/work/files"), exist_ok=True)
        open(self.in_root(files["summary"]), "w").close()
        context = {"matrix": matrix, "inputs": self.inputs, "steps": {}, "needs": self.needs,
                   "github": {"workspace": workspace, "event_name": "workflow_dispatch"}, "env": {}}
        failed = False
        steps_out, annotations, log = [], [], []
        timeout = 60 * int(job.get("timeout-minutes", 360))
        for i, step in enumerate(job.get("steps", [])):
            sid = step.get("id", f"step{i}")
            expr = Expr(context, failed)
            title = step.get("name") or step.get("uses") or step.get("run", "").split("\n")[0]
            if not expr.condition(step.get("if")):
                steps_out.append({"name": title, "outcome": "skipped"})
                context["steps"][sid] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
                continue
            with_ = {k: expr.substitute(v) for k, v in (step.get("with") or {}).items()}
            env = {"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": workspace,
                   "GITHUB_OUTPUT": files["output"], "GITHUB_STEP_SUMMARY": files["summary"],
                   "RUNNER_TEMP": "/tmp"}
            if self.args.target_dir:
                env["CARGO_TARGET_DIR"] = self.args.target_dir  # the cache's stand-in
            for k, v in {**(job.get("env") or {}), **(step.get("env") or {})}.items():
                env[k] = expr.substitute(v)
            outputs = {}
            if "run" in step:
                script = expr.substitute(step["run"])
                for i_rw, (src, dst) in enumerate(self.rewrites):
                    if src in script:
                        script = script.replace(src, dst)
                        self.rewrites_used.add(i_rw)
                open(self.in_root(files["output"]), "w").close()
                code, out = self.run_in_root(workspace, script, env, timeout)
                log.append(f"--- {label}: {title} (exit {code})\n{out}")
                annotations += [line for line in out.splitlines() if line.startswith("::error") or line.startswith("::warning")]
                outputs = parse_outputs(open(self.in_root(files["output"])).read())
                ok = code == 0
            else:
                ok = self.use(step["uses"], with_, workspace, log, label)
            outcome = "success" if ok else "failure"
            conclusion = "success" if ok or step.get("continue-on-error") else "failure"
            context["steps"][sid] = {"outputs": outputs, "outcome": outcome, "conclusion": conclusion}
            steps_out.append({"name": title, "outcome": outcome})
            if conclusion == "failure":
                failed = True
        expr = Expr(context, failed)
        job_outputs = {k: expr.substitute(v) for k, v in (job.get("outputs") or {}).items()}
        result = "failure" if failed else "success"
        self.needs[name] = {"result": result, "outputs": job_outputs}
        return {"job": name, "matrix": matrix, "label": label, "result": result, "outputs": job_outputs,
                "annotations": annotations, "steps": steps_out,
                "summary": open(self.in_root(files["summary"])).read(), "log": "\n".join(log)}

    def use(self, uses, with_, workspace, log, label):
        action = uses.split("@")[0]
        ws = self.in_root(workspace)
        store = self.args.store
        if action == "actions/checkout":
            # The checkout's files, as a clone of this commit would have them.
            # Only the top-level build folders are left out: a source folder may be named
            # `target` too (harness/src/target).
            repo = os.path.abspath(self.args.repo)
            skip = {repo: {"target", ".deps"}, os.path.join(repo, "results"): {"runs"}}

            def ignore(src, names):
                return skip.get(os.path.abspath(src), set()) & set(names)

            shutil.copytree(self.args.repo, ws, symlinks=True, dirs_exist_ok=True, ignore=ignore)
            return True
        if action in ("dtolnay/rust-toolchain", "Swatinem/rust-cache"):
            return True
        if action in ("actions/upload-artifact", "actions/upload-pages-artifact"):
            name = with_.get("name") or ("github-pages" if action.endswith("pages-artifact") else "artifact")
            src = os.path.join(ws, with_["path"])
            if not os.path.exists(src):
                missing = with_.get("if-no-files-found", "warn")
                log.append(f"--- {label}: upload {name}: {with_['path']} not found ({missing})")
                return missing != "error"
            shutil.rmtree(os.path.join(store, name), ignore_errors=True)
            copy_tree(src, os.path.join(store, name))
            return True
        if action in ("actions/download-artifact", "dawidd6/action-download-artifact"):
            dest = os.path.join(ws, with_.get("path", "."))
            if "pattern" in with_:
                names = [n for n in sorted(os.listdir(store)) if fnmatch.fnmatch(n, with_["pattern"])]
                for n in names:
                    copy_tree(os.path.join(store, n), os.path.join(dest, n))
                # As actions/download-artifact does: a pattern that matches nothing downloads
                # nothing and succeeds.
                if not names:
                    log.append(f"--- {label}: no artefact matches {with_['pattern']}")
                return True
            name = with_["name"]
            if not os.path.exists(os.path.join(store, name)):
                log.append(f"--- {label}: no artefact {name}")
                return with_.get("if_no_artifact_found", "fail") != "fail"
            copy_tree(os.path.join(store, name), dest)
            return True
        raise WorkflowError(f"{label}: no local stand-in for `{uses}`")


def parse_outputs(text):
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, marker = line.split("<<", 1)
            value = []
            for more in lines:
                if more == marker:
                    break
                value.append(more)
            outputs[key] = "\n".join(value)
        elif "=" in line:
            key, value = line.split("=", 1)
            outputs[key] = value
    return outputs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workflow")
    p.add_argument("--root", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--toolchain")
    p.add_argument("--job", action="append", default=[])
    p.add_argument("--input", action="append", default=[])
    p.add_argument("--artifact", action="append", default=[])
    p.add_argument("--target-dir")
    p.add_argument("--rewrite", action="append", default=[])
    args = p.parse_args()
    try:
        runner = Runner(args)
        results = []
        for spec in args.job:
            name, _, combo = spec.partition(":")
            matrix = dict(kv.split("=", 1) for kv in combo.split(",")) if combo else {}
            results.append(runner.run_job(name, matrix))
        unused = [args.rewrite[i] for i in range(len(args.rewrite)) if i not in runner.rewrites_used]
        if unused:
            raise WorkflowError(f"rewrites that matched no step: {unused}")
    except (WorkflowError, KeyError, OSError) as e:
        print(f"run-workflow: {e}", file=sys.stderr)
        return 2
    json.dump({"jobs": results}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
