"""What changed in a PDF after a signature, and whether that signature allows it.

The document as signed (the revision its byte range ends with) is compared
with the document as it is now, by value: what a reader renders (every page
with its inherited attributes, content, resources and annotations), the form
(every field, its value and widgets), and the document catalog. Objects a
later revision rewrote with identical content, or left unreferenced, are not
changes. Each change found has a level, as ISO 32000-1 (12.8.2.2) and
pyHanko's difference analysis name them:

- lta-updates: validation data (DSS), document time-stamps, metadata;
- form-filling: a field filled in, a signature field signed or added;
- annotations: comments and other annotations added, changed or removed,
  form fields added, the tagged structure updated;
- anything else (page content, resources, pages, a signature dictionary, a
  widget of a field whose value did not change, the catalog's actions) is
  forbidden after any signature.

A certification signature allows up to its DocMDP level (1: lta-updates,
2: form-filling, 3: annotations); an approval signature without a lock allows
annotations; a FieldMDP lock forbids any change to the fields it names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

LEVELS = ("none", "lta-updates", "form-filling", "annotations", "other")
NONE, LTA, FORM, ANNOT, OTHER = range(5)

_INHERITABLE = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")
# A field's own value and what shows it; everything else about a field is fixed.
_VALUE_KEYS = frozenset({"/V", "/AS", "/AP", "/DA", "/Q", "/RV", "/DS", "/MK", "/F"})
_SIG_SIGNING_KEYS = frozenset({"/V", "/AS", "/AP", "/MK", "/F"})
# Links between a widget, its field and its page: compared through their owners.
_LINKS = frozenset({"/P", "/Parent", "/Kids"})
_FORM_SETTINGS = frozenset({"/DR", "/DA", "/Q", "/NeedAppearances", "/SigFlags"})
_CATALOG_LEVELS = {
    "/DSS": (LTA, "validation data (DSS) added or updated"),
    "/Extensions": (LTA, "PDF extension level updated"),
    "/Version": (LTA, "PDF version updated"),
    "/Metadata": (LTA, "XMP metadata updated"),
    "/StructTreeRoot": (ANNOT, "tagged structure updated"),
    "/MarkInfo": (ANNOT, "tagged structure updated"),
}
_MAX_DEPTH = 200
_MAX_NODES = 200_000


@dataclass(frozen=True)
class ChangeReport:
    """The changes after one signature."""

    level: int
    """Highest level among the changes (index into LEVELS); OTHER when forbidden."""
    changes: tuple[str, ...] = ()
    """One phrase per kind of change, in the order found."""
    notable: tuple[str, ...] = ()
    """Those a person should hear about: form filling and above (long-term
    validation material is expected after a signature)."""
    forbidden: str | None = None
    """The first change the signature does not allow, as a phrase."""

    @property
    def level_name(self) -> str:
        """none, lta-updates, form-filling, annotations or other."""
        return LEVELS[self.level]


class _Forbidden(Exception):
    """A change no signature allows."""


@dataclass
class _Field:
    name: str
    node: Any
    ref: tuple[int, int] | None
    """The field's own reference (number, generation), when it is an object."""
    kind: str | None
    widgets: dict[tuple[int, int], Any] = field(default_factory=dict)


def review_changes(
    reader: Any,
    signed_revision: int,
    *,
    docmdp: int | None,
    locked: Callable[[str], bool] | None = None,
) -> ChangeReport:
    """Compare revision ``signed_revision`` with the document as it is now."""
    review = _Review(reader, signed_revision, locked or (lambda _name: False))
    try:
        review.run()
    except _Forbidden as exc:
        return ChangeReport(OTHER, tuple(review.phrases()), forbidden=str(exc))
    level = max((lvl for lvl, _ in review.found), default=NONE)
    allowed = {None: ANNOT, 1: LTA, 2: FORM, 3: ANNOT}.get(docmdp, ANNOT)
    if level > allowed:
        first = next(text for lvl, text in review.found if lvl > allowed)
        why = (
            f"{first}, which the certification (DocMDP level {docmdp}) does not allow"
            if docmdp is not None
            else first
        )
        return ChangeReport(OTHER, tuple(review.phrases()), forbidden=why)
    return ChangeReport(level, tuple(review.phrases()), tuple(review.phrases(FORM)))


class _Review:
    def __init__(self, reader: Any, revision: int, locked: Callable[[str], bool]) -> None:
        xrefs = reader.xrefs
        last = xrefs.total_revisions - 1
        self.old = reader.get_historical_resolver(revision)
        # The document as it is now: the reader itself (its objects, uncopied).
        self.new = reader
        changed: set[int] = set()
        for rev in range(revision + 1, last + 1):
            changed |= {r.idnum for r in xrefs.explicit_refs_in_revision(rev)}
            changed |= {r.idnum for r in xrefs.refs_freed_in_revision(rev)}
        self.changed = changed
        # Object streams that hold objects of the signed revision. pyHanko
        # reads a packed object through the current version of its stream,
        # whatever revision is asked for: an update that rewrites the stream
        # changes the signed revision's objects as both views show them.
        self.containers: set[int] = set()
        for rev in range(revision + 1):
            sections = [xrefs.get_xref_data(rev)]
            sections += [h.xref_data for h in (sections[0].hybrid,) if h is not None]
            for section in sections:
                self.containers |= section.obj_streams_used
        self.locked = locked
        self.found: list[tuple[int, str]] = []
        # Objects are told apart by number and generation: a reference whose
        # generation is not the object's names nothing (null), as for readers.
        self.old_pages: dict[tuple[int, int], int] = {}
        self.roots = ((-1, -1), (-1, -1))
        self.new_pages: dict[tuple[int, int], int] = {}
        self.old_counts: list[Any] = []
        self.new_counts: list[Any] = []
        self._memo: dict[tuple[tuple[int, int], tuple[int, int]], bool] = {}
        self._order: list[tuple[tuple[int, int], tuple[int, int]]] = []

    def note(self, level: int, text: str) -> None:
        self.found.append((level, text))

    def phrases(self, at_least: int = NONE) -> Iterator[str]:
        counts: dict[str, int] = {}
        for level, text in self.found:
            if level >= at_least:
                counts[text] = counts.get(text, 0) + 1
        for text, n in counts.items():
            yield text if n == 1 else f"{text} ({n} times)"

    # ------------------------------------------------------------------ values

    def get(self, resolver: Any, value: Any) -> Any:
        from pyhanko.pdf_utils import generic

        if isinstance(value, generic.DecryptedObjectProxy):
            return _decrypted(value)
        if not isinstance(value, generic.IndirectObject):
            return value
        try:
            return resolver.get_object(value.reference)
        except Exception as exc:  # an unreadable object is a difference, not a crash
            if not _library_fault(exc):
                raise
            return _UNREADABLE

    def same(self, a: Any, b: Any, depth: int = 0) -> bool:
        """Equal by value: a in the signed revision, b now."""
        from pyhanko.pdf_utils import generic

        if depth > _MAX_DEPTH:
            return False
        if not (isinstance(a, generic.IndirectObject) and isinstance(b, generic.IndirectObject)):
            return self.same_values(self.get(self.old, a), self.get(self.new, b), depth + 1)
        ka, kb = (a.idnum, a.generation), (b.idnum, b.generation)
        if ka in self.old_pages and kb in self.new_pages:
            # A page referred to from elsewhere (a destination, a structure
            # element) is the same page if it has the same place; the pages
            # themselves are compared one by one.
            return self.old_pages[ka] == self.new_pages[kb]
        if ka == self.roots[0] and kb == self.roots[1]:
            return True  # the catalog, referred to (a DocMDP reference's /Data): compared as such
        key = (ka, kb)
        known = self._memo.get(key)
        if known is not None:
            return known
        # Assumed equal while being compared (a cycle back to it proves
        # nothing); if it turns out different, what was concluded under the
        # assumption is forgotten.
        mark = len(self._order)
        self._memo[key] = True
        self._order.append(key)
        if len(self._order) > _MAX_NODES:
            raise _Forbidden("too many objects to compare")
        if ka == kb and ka[0] not in self.changed:
            # Not rewritten since: equal unless something it refers to was.
            value = self.get(self.new, b)
            result = value is not _UNREADABLE and all(
                self.same(ref, ref, depth + 1) for ref in _references(value)
            )
        else:
            result = self.same_values(self.get(self.old, a), self.get(self.new, b), depth + 1)
        if not result:
            for stale in self._order[mark:]:
                self._memo.pop(stale, None)
            del self._order[mark:]
            self._memo[key] = False
        return result

    def same_values(self, a: Any, b: Any, depth: int) -> bool:
        from pyhanko.pdf_utils import generic

        if a is _UNREADABLE or b is _UNREADABLE:
            return False
        if isinstance(a, generic.StreamObject) or isinstance(b, generic.StreamObject):
            return (
                isinstance(a, generic.StreamObject)
                and isinstance(b, generic.StreamObject)
                and a.encoded_data == b.encoded_data
                and self.same_dicts(a, b, frozenset(), depth)
            )
        if isinstance(a, generic.DictionaryObject) or isinstance(b, generic.DictionaryObject):
            return (
                isinstance(a, generic.DictionaryObject)
                and isinstance(b, generic.DictionaryObject)
                and self.same_dicts(a, b, frozenset(), depth)
            )
        if isinstance(a, generic.ArrayObject) or isinstance(b, generic.ArrayObject):
            return (
                isinstance(a, generic.ArrayObject)
                and isinstance(b, generic.ArrayObject)
                and len(a) == len(b)
                and all(self.same(_raw(a, i), _raw(b, i), depth) for i in range(len(a)))
            )
        if isinstance(a, generic.TextStringObject) and isinstance(b, generic.TextStringObject):
            # A text string is its text: a writer may store it again in another
            # encoding (UTF-16 as PDFDocEncoding), as pyHanko does a catalog's.
            return str(a) == str(b)
        strings = (generic.TextStringObject, generic.ByteStringObject)
        if isinstance(a, strings) or isinstance(b, strings):
            return (
                isinstance(a, strings)
                and isinstance(b, strings)
                and a.original_bytes == b.original_bytes
            )
        numbers = (generic.NumberObject, generic.FloatObject)
        if isinstance(a, numbers) or isinstance(b, numbers):
            return isinstance(a, numbers) and isinstance(b, numbers) and a == b
        if isinstance(a, generic.BooleanObject) or isinstance(b, generic.BooleanObject):
            return (
                isinstance(a, generic.BooleanObject)
                and isinstance(b, generic.BooleanObject)
                and bool(a.value) == bool(b.value)
            )
        return type(a) is type(b) and bool(a == b)

    def same_dicts(self, a: Any, b: Any, skip: frozenset[str], depth: int = 0) -> bool:
        return self.first_difference(a, b, skip, depth) is None

    def first_difference(self, a: Any, b: Any, skip: frozenset[str], depth: int = 0) -> str | None:
        """The first key whose value differs (skipping ``skip``), else None."""
        for key in sorted((set(a) | set(b)) - skip):
            if key not in a or key not in b:
                return str(key)
            if not self.same(_raw(a, key), _raw(b, key), depth):
                return str(key)
        return None

    # ------------------------------------------------------------------ document

    def run(self) -> None:
        from pyhanko.pdf_utils import generic

        for number in sorted(self.containers):
            # Its stored bytes, and what they depend on (an indirect /Length),
            # as signed: only then do both views read its objects as signed.
            ref = generic.IndirectObject(number, 0, self.new)  # type: ignore[no-untyped-call]
            if not self.same(ref, ref):
                raise _Forbidden(f"object stream {number} of the signed revision changed")
        old_raw = self.old.trailer_view.raw_get("/Root")
        new_raw = self.new.trailer_view.raw_get("/Root")
        if isinstance(old_raw, generic.IndirectObject) and isinstance(
            new_raw, generic.IndirectObject
        ):
            self.roots = (
                (old_raw.idnum, old_raw.generation),
                (new_raw.idnum, new_raw.generation),
            )
        old_root = self.get(self.old, old_raw)
        new_root = self.get(self.new, new_raw)
        if not _is_dict(old_root) or not _is_dict(new_root):
            raise _Forbidden("the document catalog cannot be read")
        self.old_page_list = self.page_list(self.old, old_root, self.old_pages, self.old_counts)
        self.new_page_list = self.page_list(self.new, new_root, self.new_pages, self.new_counts)
        old_fields = self.fields(self.old, old_root)
        new_fields = self.fields(self.new, new_root)
        field_widgets = {w for f in old_fields.values() for w in f.widgets} | {
            w for f in new_fields.values() for w in f.widgets
        }
        self.pages(old_root, new_root, field_widgets)
        self.form(old_root, new_root, old_fields, new_fields)
        self.catalog(old_root, new_root)
        old_info = (
            self.old.trailer_view.raw_get("/Info") if "/Info" in self.old.trailer_view else None
        )
        new_info = (
            self.new.trailer_view.raw_get("/Info") if "/Info" in self.new.trailer_view else None
        )
        if (old_info is None) != (new_info is None) or (
            old_info is not None and not self.same(old_info, new_info)
        ):
            self.note(LTA, "document information updated")

    def catalog(self, old_root: Any, new_root: Any) -> None:
        for key in sorted((set(old_root) | set(new_root)) - {"/Pages", "/AcroForm", "/Type"}):
            if key in old_root and key in new_root:
                if self.same(_raw(old_root, key), _raw(new_root, key)):
                    continue
            if key in _CATALOG_LEVELS:
                self.note(*_CATALOG_LEVELS[key])
            else:
                raise _Forbidden(f"the document catalog's {key} entry changed")

    # ------------------------------------------------------------------ pages

    def page_list(
        self, resolver: Any, root: Any, index: dict[tuple[int, int], int], counts: list[Any]
    ) -> list[tuple[Any, dict[str, Any]]]:
        """The pages in order, each with what it inherits; ``index`` gets each
        page's place, ``counts`` every inner node's /Count (or None)."""
        from pyhanko.pdf_utils import generic

        found: list[tuple[Any, dict[str, Any]]] = []
        seen: set[int] = set()
        if "/Pages" not in root:
            raise _Forbidden("the page tree cannot be read")
        stack: list[tuple[Any, dict[str, Any]]] = [(_raw(root, "/Pages"), {})]
        while stack:
            raw, inherited = stack.pop()
            if isinstance(raw, generic.IndirectObject):
                if raw.idnum in seen:
                    raise _Forbidden("the page tree is cyclic")
                seen.add(raw.idnum)
            node = self.get(resolver, raw)
            if not _is_dict(node) or len(seen) > _MAX_NODES:
                raise _Forbidden("the page tree cannot be read")
            if node.get("/Type") != "/Page" and "/Kids" in node:
                # Readers count and number the pages by /Count, not by /Kids.
                counts.append(_raw(node, "/Count") if "/Count" in node else None)
                inherit = dict(inherited)
                for key in _INHERITABLE:
                    if key in node:
                        inherit[key] = _raw(node, key)
                kids = self.get(resolver, _raw(node, "/Kids"))
                if not isinstance(kids, generic.ArrayObject):
                    raise _Forbidden("the page tree cannot be read")
                stack.extend((_raw(kids, i), inherit) for i in reversed(range(len(kids))))
            else:
                if isinstance(raw, generic.IndirectObject):
                    index[raw.idnum, raw.generation] = len(found)
                found.append((node, inherited))
        return found

    def pages(self, old_root: Any, new_root: Any, field_widgets: set[tuple[int, int]]) -> None:
        old_pages, new_pages = self.old_page_list, self.new_page_list
        if len(old_pages) != len(new_pages):
            raise _Forbidden(
                f"pages were added or removed ({len(old_pages)} signed, {len(new_pages)} now)"
            )
        old_counts, new_counts = self.old_counts, self.new_counts
        if len(old_counts) != len(new_counts):
            raise _Forbidden("the page tree changed")
        for a, b in zip(old_counts, new_counts, strict=True):
            if (a is None) != (b is None) or (a is not None and not self.same(a, b)):
                # A /Count lowered hides the last pages; raised, adds blank ones.
                raise _Forbidden("the page tree changed (/Count)")
        for number, ((old, old_inh), (new, new_inh)) in enumerate(
            zip(old_pages, new_pages, strict=True), start=1
        ):
            key = self.first_difference(old, new, frozenset({"/Annots", "/Parent"}))
            if key is None:
                for name in _INHERITABLE:
                    if name in old or name in new:
                        continue
                    a, b = old_inh.get(name), new_inh.get(name)
                    if (a is None) != (b is None) or (a is not None and not self.same(a, b)):
                        key = name
                        break
            if key is not None:
                what = "content" if key == "/Contents" else key
                raise _Forbidden(f"page {number} changed ({what})")
            self.annotations(number, old, new, field_widgets)

    def annotation_map(self, resolver: Any, page: Any) -> dict[Any, Any]:
        from pyhanko.pdf_utils import generic

        if "/Annots" not in page:
            return {}
        annots = self.get(resolver, _raw(page, "/Annots"))
        if not isinstance(annots, generic.ArrayObject):
            raise _Forbidden("a page's annotation list cannot be read")
        found: dict[Any, Any] = {}
        for index in range(len(annots)):
            raw = _raw(annots, index)
            key = (
                (raw.idnum, raw.generation)
                if isinstance(raw, generic.IndirectObject)
                else ("direct", index)
            )
            found[key] = raw
        return found

    def annotations(
        self, number: int, old: Any, new: Any, field_widgets: set[tuple[int, int]]
    ) -> None:
        before = self.annotation_map(self.old, old)
        after = self.annotation_map(self.new, new)
        for key, raw in before.items():
            annot = self.get(self.old, raw)
            kind = _subtype(annot)
            if key not in after:
                if kind == "/Widget" and key in field_widgets:
                    raise _Forbidden(f"a form field's widget was removed from page {number}")
                self.note(ANNOT, f"annotation removed from page {number} ({kind})")
            elif kind == "/Widget" and key in field_widgets:
                continue  # judged with its field
            elif not self.same_dicts(annot, self.get(self.new, after[key]), _LINKS):
                self.note(ANNOT, f"annotation changed on page {number} ({kind})")
        for key, raw in after.items():
            if key in before:
                continue
            annot = self.get(self.new, raw)
            kind = _subtype(annot)
            if kind == "/Widget" and key in field_widgets:
                continue  # a new field's or signature's widget: judged with its field
            self.note(ANNOT, f"annotation added on page {number} ({kind})")
        # Annotations are drawn in their list's order: the later on top.
        if [k for k in before if k in after] != [k for k in after if k in before]:
            self.note(ANNOT, f"annotations reordered on page {number}")

    # ------------------------------------------------------------------ form

    def fields(self, resolver: Any, root: Any) -> dict[str, _Field]:
        from pyhanko.pdf_utils import generic

        if "/AcroForm" not in root:
            return {}
        form = self.get(resolver, _raw(root, "/AcroForm"))
        if not _is_dict(form) or "/Fields" not in form:
            return {}
        top = self.get(resolver, _raw(form, "/Fields"))
        if not isinstance(top, generic.ArrayObject):
            raise _Forbidden("the form's field list cannot be read")
        found: dict[str, _Field] = {}
        seen: set[int] = set()
        stack: list[tuple[Any, str, str | None]] = [
            (_raw(top, i), "", None) for i in reversed(range(len(top)))
        ]
        while stack:
            raw, parent, kind = stack.pop()
            ref = (raw.idnum, raw.generation) if isinstance(raw, generic.IndirectObject) else None
            if ref is not None:
                if ref[0] in seen:
                    raise _Forbidden("the form's field tree is cyclic")
                seen.add(ref[0])
            node = self.get(resolver, raw)
            if not _is_dict(node) or len(seen) > _MAX_NODES:
                raise _Forbidden("the form's field tree cannot be read")
            kind = str(node["/FT"]) if "/FT" in node else kind
            part = self.get(resolver, _raw(node, "/T")) if "/T" in node else None
            name = f"{parent}.{part}" if parent and part is not None else str(part or parent)
            entry = _Field(name, node, ref, kind)
            found[name] = entry
            kids = self.get(resolver, _raw(node, "/Kids")) if "/Kids" in node else None
            if isinstance(kids, generic.ArrayObject):
                for index in reversed(range(len(kids))):
                    kid_raw = _raw(kids, index)
                    kid = self.get(resolver, kid_raw)
                    if _is_dict(kid) and "/T" not in kid:
                        if isinstance(kid_raw, generic.IndirectObject):
                            entry.widgets[kid_raw.idnum, kid_raw.generation] = kid
                    else:
                        stack.append((kid_raw, name, kind))
            elif ref is not None and (_subtype(node) == "/Widget" or "/Rect" in node):
                entry.widgets[ref] = node
        return found

    def form(
        self,
        old_root: Any,
        new_root: Any,
        old_fields: dict[str, _Field],
        new_fields: dict[str, _Field],
    ) -> None:
        from pyhanko.pdf_utils import generic

        empty = generic.DictionaryObject()  # type: ignore[no-untyped-call]
        old_form = (
            self.get(self.old, _raw(old_root, "/AcroForm")) if "/AcroForm" in old_root else empty
        )
        new_form = (
            self.get(self.new, _raw(new_root, "/AcroForm")) if "/AcroForm" in new_root else empty
        )
        if not _is_dict(old_form) or not _is_dict(new_form):
            raise _Forbidden("the form cannot be read")
        key = self.first_difference(old_form, new_form, _FORM_SETTINGS | {"/Fields"})
        if key is not None:
            raise _Forbidden(f"the form's {key} entry changed")
        if any(not self._same_entry(old_form, new_form, k) for k in _FORM_SETTINGS):
            self.note(FORM, "form settings updated")
        for name, old in old_fields.items():
            new = new_fields.get(name)
            if new is None:
                raise _Forbidden(f"form field '{name}' was removed")
            self.compare_field(old, new)
        for name, new in new_fields.items():
            if name in old_fields:
                continue
            if new.kind != "/Sig":
                self.note(ANNOT, f"form field '{name}' added")
            elif "/V" not in new.node:
                self.note(FORM, f"empty signature field '{name}' added")
            elif _is_timestamp(self.get(self.new, _raw(new.node, "/V"))):
                self.note(LTA, "document time-stamp added")
            else:
                self.note(FORM, f"signature field '{name}' added and signed")

    def compare_field(self, old: _Field, new: _Field) -> None:
        name = old.name
        if old.kind == "/Sig" and "/V" in old.node:
            allowed: frozenset[str] = frozenset()
            change = None
            refusal = f"signature field '{name}' was changed after it was signed"
        elif old.kind == "/Sig":
            signing = "/V" in new.node
            allowed = _SIG_SIGNING_KEYS if signing else frozenset()
            value = self.get(self.new, _raw(new.node, "/V")) if signing else None
            change = None
            if signing:
                change = (
                    (LTA, "document time-stamp added")
                    if _is_timestamp(value)
                    else (FORM, f"signature field '{name}' signed")
                )
            refusal = f"signature field '{name}' changed"
        else:
            filled = not self._same_entry(old.node, new.node, "/V")
            allowed = _VALUE_KEYS if filled else frozenset()
            change = (FORM, f"form field '{name}' filled in") if filled else None
            refusal = f"form field '{name}' changed"
        key = self.first_difference(old.node, new.node, _LINKS | allowed)
        if key is not None:
            raise _Forbidden(f"{refusal} ({key})")
        for ref, widget in old.widgets.items():
            if ref == old.ref:
                continue  # field and widget in one dictionary: compared above
            now = new.widgets.get(ref)
            if now is None:
                raise _Forbidden(f"a widget of form field '{name}' was removed")
            key = self.first_difference(widget, now, _LINKS | allowed)
            if key is not None:
                raise _Forbidden(f"{refusal} ({key} of a widget)")
        if set(new.widgets) - set(old.widgets) - {new.ref}:
            self.note(ANNOT, f"widget added to form field '{name}'")
        if change is not None:
            if self.locked(name):
                raise _Forbidden(f"{change[1]}, but a FieldMDP lock forbids changing it")
            self.note(*change)

    def _same_entry(self, a: Any, b: Any, key: str) -> bool:
        if (key in a) != (key in b):
            return False
        return key not in a or self.same(_raw(a, key), _raw(b, key))


class _Unreadable:
    def __repr__(self) -> str:
        return "<unreadable>"


_UNREADABLE = _Unreadable()


def _references(value: Any) -> Iterator[Any]:
    """The indirect references directly inside a value (through nested direct
    dictionaries and arrays)."""
    from pyhanko.pdf_utils import generic

    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, generic.DecryptedObjectProxy):
            # a direct container of an encrypted document (its strings are
            # only ever read through Changes.get)
            if isinstance(item.raw_object, generic.DictionaryObject | generic.ArrayObject):
                stack.append(item.decrypted)
        elif isinstance(item, generic.IndirectObject):
            yield item
        elif isinstance(item, generic.DictionaryObject):
            stack.extend(_raw(item, k) for k in item)
        elif isinstance(item, generic.ArrayObject):
            stack.extend(_raw(item, i) for i in range(len(item)))


def _raw(container: Any, key: Any) -> Any:
    """``container``'s entry as stored: a reference stays one and, in an
    encrypted document, a direct value stays encrypted until Changes.get reads
    it (the value of a signature's /Contents is stored in clear)."""
    return container.raw_get(key, decrypt=_as_stored())


@functools.cache
def _as_stored() -> Any:
    from pyhanko.pdf_utils.generic import EncryptedObjAccess

    return EncryptedObjAccess.PROXY


def _decrypted(proxy: Any) -> Any:
    """A direct value of an encrypted document, decrypted; as stored when it
    was never encrypted (a signature's /Contents) and does not decrypt."""
    try:
        return proxy.decrypted
    except Exception as exc:
        if not _library_fault(exc):
            raise
        return proxy.raw_object


def _is_dict(value: Any) -> bool:
    from pyhanko.pdf_utils import generic

    return isinstance(value, generic.DictionaryObject)


def _subtype(annot: Any) -> str:
    if _is_dict(annot) and "/Subtype" in annot:
        return str(annot["/Subtype"])
    return "unknown"


def _is_timestamp(sig: Any) -> bool:
    return _is_dict(sig) and (
        sig.get("/Type") == "/DocTimeStamp" or sig.get("/SubFilter") == "/ETSI.RFC3161"
    )


def _library_fault(exc: BaseException) -> bool:
    from signkit.faults import library_fault

    return library_fault(exc)
