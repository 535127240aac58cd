"""The deliberation domain's public functions (docs/CONTRACTS.md); other domains import these."""

from __future__ import annotations

from yishi.deliberation import threads
from yishi.deliberation.issues import (
    get_issue,
    get_issues_for_reporter,
    get_timeline,
    list_issues,
    record_issue,
)
from yishi.deliberation.schemas import IssueRecorded, ThreadSummary
from yishi.deliberation.summaries import summarise_thread
from yishi.deliberation.threads import (
    add_statement,
    find_thread_by_topic,
    get_open_threads,
    get_statements,
    parse_vote_command,
    post_to_thread,
    statement_for_message,
    vote,
)

__all__ = [
    "IssueRecorded",
    "ThreadSummary",
    "add_statement",
    "find_thread_by_topic",
    "get_issue",
    "get_issues_for_reporter",
    "get_open_threads",
    "get_statements",
    "get_timeline",
    "list_issues",
    "parse_vote_command",
    "post_to_thread",
    "record_issue",
    "statement_for_message",
    "summarise_thread",
    "threads",
    "vote",
]
