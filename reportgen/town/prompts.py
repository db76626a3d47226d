"""The texts the engine writes for agents to act on: feedback and conflict-resolution prompts.

These are upstream's ``buildFeedbackBeadTitle``, ``buildFeedbackPrompt`` and
``buildConflictResolutionPrompt``, reproduced word for word because the
golden fixtures compare bead bodies byte for byte. They are kept apart from
the event handlers in :mod:`reportgen.town.events` so that the handlers read
as logic and the prose can be reviewed on its own.
"""

from __future__ import annotations


def js_number(value: int | float) -> str:
    """A number as JavaScript's template literal prints it (``11.0`` → ``11``)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


def feedback_bead_title(
    pr_number: int | float, repo: str, comments: bool, failing: bool, unchecked: bool
) -> str:
    """``buildFeedbackBeadTitle``: ``Address <parts> on PR #<n>[ (<repo-short>)]``."""
    parts: list[str] = []
    if comments:
        parts.append("review comments")
    if failing:
        parts.append("failing CI")
    if unchecked and not failing:
        parts.append("unchecked CI runs")
    short = repo.split("/")[-1] if "/" in repo else repo
    suffix = f" ({short})" if short else ""
    return f"Address {' & '.join(parts)} on PR #{js_number(pr_number)}{suffix}"


def feedback_prompt(
    pr_number: int | float,
    repo: str,
    branch: str,
    comments: bool,
    failing: bool,
    unchecked: bool,
) -> str:
    """``buildFeedbackPrompt``: the body of a ``gt:pr-feedback`` bead."""
    n = js_number(pr_number)
    lines = [f"You are addressing feedback on PR #{n} on {repo}, branch {branch}.", ""]
    if comments and failing:
        lines.append("This PR has both unresolved review comments and failing CI checks.")
        lines.append(
            "Address the review comments first, then fix the CI failures, as comment fixes"
            " may also resolve some CI issues."
        )
    elif comments and unchecked:
        lines.append(
            "This PR has unresolved review comments and more than 100 CI check-runs (not all"
            " could be inspected). Address the review comments and verify CI status."
        )
    elif comments:
        lines.append("This PR has unresolved review comments.")
    elif failing:
        lines.append("This PR has failing CI checks.")
    elif unchecked:
        lines.append(
            "This PR has more than 100 CI check-runs. Not all could be inspected by the system."
            " Check `gh pr checks` for the full status and fix any failures."
        )
    lines += [
        "",
        "## Review Comments",
        "",
        f"Run `gh pr view {n} --comments` to see all review comments.",
        "",
        "For each unresolved comment thread:",
        "- If it's a relevant code fix: make the change, push, reply explaining what you did,"
        " and resolve the thread",
        "- If it's not relevant: reply explaining why, and resolve the thread",
        "",
        "It's important to resolve the full thread rather than just the base comment.",
        "",
        "## CI Checks",
        "",
        f"Run `gh pr checks {n}` to see the status of all CI checks.",
        "",
        "For each failing check:",
        "- Read the failure logs via `gh run view <run_id> --log-failed`",
        "- Fix the underlying issue (test failure, lint error, type error, etc.)",
        "- Push the fix",
        "- Verify the check passes by reviewing the new run",
        "",
        "After addressing everything, push all changes in a single commit (or minimal commits)"
        " and call gt_done.",
    ]
    return "\n".join(lines)


def conflict_resolution_prompt(pr_url: str, branch: str, target_branch: str) -> str:
    """``buildConflictResolutionPrompt``: the body of a ``gt:pr-conflict`` bead."""
    lines = [
        f"You are resolving merge conflicts on branch `{branch}`.",
        f"The PR is: {pr_url}",
        f"The target branch is: `{target_branch}`",
        "",
        "## Steps",
        "",
        "1. Fetch the latest state of the remote:",
        "   ```",
        "   git fetch origin",
        "   ```",
        "",
        "2. Rebase your branch onto the target branch to incorporate its latest changes:",
        "   ```",
        f"   git rebase origin/{target_branch}",
        "   ```",
        "",
        "3. If there are conflicts during rebase, resolve them:",
        "   - Edit the conflicting files to resolve the conflict markers"
        " (`<<<<<<<`, `=======`, `>>>>>>>`)",
        "   - Stage the resolved files: `git add <file>`",
        "   - Continue the rebase: `git rebase --continue`",
        "   - Repeat until the rebase completes",
        "",
        "4. Push the rebased branch:",
        "   ```",
        f"   git push --force-with-lease origin {branch}",
        "   ```",
        "",
        "5. Call `gt_done` once the push succeeds, passing both required arguments:",
        f"   - `pr_url`: `{pr_url}`",
        f"   - `branch`: `{branch}`",
    ]
    return "\n".join(lines)


def conflict_escalation_body(pr_url: str, branch: str) -> str:
    """The body of the escalation bead when merge conflicts are not auto-resolved."""
    return f"PR {pr_url} (branch {branch}) has merge conflicts that require manual resolution."
