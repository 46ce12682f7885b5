"""Tags of a whole account x region from one paginated listing, instead of one call per resource.

SQS, SNS, DynamoDB, Lambda and S3 have no listing that returns tags: reading them one resource at a
time was 40% of a full sync's API calls (ListQueueTags, ListTagsForResource, ListTagsOfResource,
ListTags, GetBucketTagging), and call volume is what throttles a multi-account inventory. The Resource
Groups Tagging API's GetResources returns the tags of every tagged resource of a region, 100 a page.

The book answers only for the ARNs it listed. GetResources lists resources that have (or had) tags, and
may lag a tag written seconds ago; so a resource the book does not list is asked directly, and an
untagged or brand-new resource still gets its exact answer. When the book cannot be read (AccessDenied
on ``tag:GetResources``, throttling past the retries, an outage) every resource is asked directly, as
before: the book is a shortcut, never a source of errors. It is only worth its pages when a scope has
several resources to read (``BOOK_MIN``): an incremental sync that found one new queue asks the queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# The services whose collectors read tags per resource; EC2, RDS, ASG, ECS, ELBv2, EKS, CloudFormation
# and IAM already get tags from their listings.
BOOK_SERVICES = ("sqs", "sns", "dynamodb", "lambda", "s3")
BOOK_MIN = 4  # fewer resources to read than this: asking each is cheaper than paging the region


class TagBook:
    """The tags GetResources lists for one account x region, read once on first use (thread-safe)."""

    def __init__(self, client_for: Callable[[str], Any], region: str):
        self._client_for = client_for
        self.region = region
        self._tags: dict[str, dict[str, str]] | None = None
        self._lock = threading.Lock()
        self.available = True

    def _load(self) -> dict[str, dict[str, str]]:
        with self._lock:
            if self._tags is None:
                tags: dict[str, dict[str, str]] = {}
                try:
                    client = self._client_for(self.region)
                    for page in client.get_paginator("get_resources").paginate(
                            ResourceTypeFilters=list(BOOK_SERVICES), ResourcesPerPage=100):
                        for mapping in page.get("ResourceTagMappingList", []):
                            tags[mapping["ResourceARN"]] = {t["Key"]: t["Value"] for t in mapping.get("Tags", [])}
                except (ClientError, BotoCoreError):
                    self.available = False  # every resource is then asked directly
                    tags = {}
                self._tags = tags
            return self._tags

    def get(self, arn: str) -> dict[str, str] | None:
        """The resource's tags, or None when the book does not list it (ask the resource itself)."""
        found = self._load().get(arn)
        return dict(found) if found is not None else None


class TagBooks:
    """One TagBook per region of one account, for the length of one sync run: tags are read fresh each
    run, and the books of every account-region a run touches are read at most once."""

    def __init__(self, client_for: Callable[[str], Any]):
        self._client_for = client_for
        self._books: dict[str, TagBook] = {}
        self._lock = threading.Lock()

    def book(self, region: str) -> TagBook:
        with self._lock:
            if region not in self._books:
                self._books[region] = TagBook(self._client_for, region)
            return self._books[region]


def tags_of(books: TagBooks | None, region: str, arn: str, wanted: int, ask: Callable[[], dict[str, str]]
            ) -> dict[str, str]:
    """A resource's tags: from the region's book when the scope reads ``wanted`` >= BOOK_MIN resources
    and the book lists this ARN; otherwise from ``ask`` (the resource's own tag call)."""
    if books is not None and wanted >= BOOK_MIN:
        found = books.book(region).get(arn)
        if found is not None:
            return found
    return ask()
