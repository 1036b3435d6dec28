"""Just enough Kubernetes protobuf to read a SelfSubjectAccessReview.

kubectl sends ``authorization.k8s.io`` requests as ``application/vnd.kubernetes.protobuf`` and,
unlike for CBOR, does not fall back to JSON on 415. The envelope is the magic ``k8s\\0`` then a
``runtime.Unknown`` whose field 2 holds the object; field numbers below are from
``k8s.io/api/authorization/v1/generated.proto``. Answers go back as JSON, which client-go decodes
by the response's content type.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
_RESOURCE_FIELDS = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}
_NON_RESOURCE_FIELDS = {1: "path", 2: "verb"}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> dict[int, bytes]:
    """Length-delimited fields of one message by number (last wins; others skipped)."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            out[number] = data[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _strings(data: bytes, names: dict[int, str]) -> dict[str, str]:
    return {names[n]: v.decode() for n, v in fields(data).items() if n in names}


def self_subject_access_review(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded SelfSubjectAccessReview."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf envelope")
    review = fields(fields(body[len(MAGIC) :]).get(2, b""))
    spec = fields(review.get(2, b""))
    out: dict[str, Any] = {}
    if 1 in spec:
        out["resourceAttributes"] = _strings(spec[1], _RESOURCE_FIELDS)
    if 2 in spec:
        out["nonResourceAttributes"] = _strings(spec[2], _NON_RESOURCE_FIELDS)
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": out,
    }
