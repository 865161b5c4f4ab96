"""One evaluation as a FHIR R4 `Bundle`: the answers, the evaluation and the patient's summary PDF.

- `QuestionnaireResponse`: the answers (engine/fhir/response.py).
- `GuidanceResponse`: the evaluation, as FHIR's record of a decision-support module's answer.
  `moduleCanonical` names the rulebook with its version (`.../Library/pain-sdm-rulebook|VERSION`),
  and `outputParameters` points at a `Parameters` resource holding the result: the answers
  evaluated (a reference), the rulebook version, profile and urgent assessment, then one `option`
  per procedure with its `status`, each `reason`, `caution` and the `declined` rule as a
  `ruleId` and `ruleVersion`, and its `nextStep` ids. A GuidanceResponse rather than
  RequestGroup or CarePlan: pain-sdm proposes nothing to order; it reports statuses to discuss.
- `DocumentReference`: the summary PDF inline, with content type, language, size and the SHA-1
  hash of the bytes in base64, as FHIR's Attachment defines them.

The patient is a label (a Reference by identifier) only when one is given; never a name.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from typing import Any

from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.documentreference import DocumentReference, DocumentReferenceContent, DocumentReferenceContext
from fhir.resources.R4B.guidanceresponse import GuidanceResponse
from fhir.resources.R4B.parameters import Parameters, ParametersParameter
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from pydantic import BaseModel

from engine.evaluation.aid import DecisionAid
from engine.evaluation.result import Finding, OptionResult, Result
from engine.fhir.questionnaire import CANONICAL
from engine.fhir.response import build_response, patient_reference
from engine.interview.session import Session

RULEBOOK_URL = f"{CANONICAL}/Library/pain-sdm-rulebook"
SUMMARY_LANGUAGE = "en"


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _rule(name: str, finding: Finding) -> ParametersParameter:
    return ParametersParameter(
        name=name,
        part=[
            ParametersParameter(name="ruleId", valueString=finding.rule_id),
            ParametersParameter(name="ruleVersion", valueInteger=finding.rule_version),
        ],
    )


def _option(option: OptionResult) -> ParametersParameter:
    parts = [
        ParametersParameter(name="procedure", valueCode=option.procedure),
        ParametersParameter(name="name", valueString=option.name),
        ParametersParameter(name="status", valueCode=option.status),
        *(_rule("reason", f) for f in option.reasons),
        *(_rule("caution", f) for f in option.cautions),
        *([_rule("declined", option.declined)] if option.declined else []),
        *(ParametersParameter(name="nextStep", valueCode=s.id) for s in option.next_steps),
    ]
    return ParametersParameter(name="option", part=parts)


def result_parameters(result: Result, answers: str) -> Parameters:
    """The result as FHIR Parameters: each option's status, and which rules (and versions) set it.

    `answers` is the reference of the QuestionnaireResponse evaluated (R4's GuidanceResponse has no
    element for its input: reasonReference takes clinical resources only).
    """
    head = [
        ParametersParameter(name="questionnaireResponse", valueReference=Reference(reference=answers)),
        ParametersParameter(name="rulebookVersion", valueString=result.rulebook_version),
        ParametersParameter(name="engine", valueString=result.engine),
        ParametersParameter(name="profile", valueString=result.profile),
        ParametersParameter(name="urgentAssessment", valueBoolean=result.urgent_assessment),
        *(_rule("urgentReason", f) for f in result.urgent_reasons),
    ]
    return Parameters(parameter=head + [_option(o) for o in result.options])


def summary_pdf(aid: DecisionAid, answers: BaseModel, result: Result, session: Session | None, **kwargs: Any) -> bytes:
    from engine.presentation.summary import build_summary, render_pdf

    return render_pdf(build_summary(aid, answers, result=result, session=session, **kwargs))


def pdf_attachment(pdf: bytes, created: dt.datetime) -> Attachment:
    """The PDF inline, with its size and SHA-1 hash (base64 of the digest, as FHIR's Attachment.hash)."""
    return Attachment(
        contentType="application/pdf",
        language=SUMMARY_LANGUAGE,
        data=base64.b64encode(pdf),
        size=len(pdf),
        hash=base64.b64encode(hashlib.sha1(pdf, usedforsecurity=False).digest()),
        title="Your pain treatment options: a summary to discuss",
        creation=created,
    )


def build_bundle(
    aid: DecisionAid,
    answers: BaseModel,
    *,
    session: Session | None = None,
    profile: str | None = None,
    patient_label: str | None = None,
    paper: str = "a4",
    now: dt.datetime | None = None,
) -> Bundle:
    """The answers, the evaluation and the summary PDF as one FHIR collection Bundle."""
    when = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    label = patient_label or str(getattr(answers, "patient_label", "") or "") or None
    subject = patient_reference(label)
    result = aid.evaluate(answers, profile or (session.profile if session else None))
    response = build_response(aid.questionnaire, answers, aid.rulebook.version, patient_label=label, authored=when)
    ids = {kind: _urn() for kind in ("response", "parameters", "guidance", "document")}
    guidance = GuidanceResponse(
        moduleCanonical=f"{RULEBOOK_URL}|{result.rulebook_version}",
        status="success",
        subject=subject,
        occurrenceDateTime=when,
        outputParameters=Reference(reference=ids["parameters"], type="Parameters"),
    )
    pdf = summary_pdf(aid, answers, result, session, paper=paper, patient_label=label)
    document = DocumentReference(
        status="current",
        type=CodeableConcept(text="Shared decision-making summary for interventional pain management"),
        subject=subject,
        date=when,
        description="The patient's discussion summary from pain-sdm (options, reasons, benefits and risks).",
        content=[DocumentReferenceContent(attachment=pdf_attachment(pdf, when))],
        context=DocumentReferenceContext(related=[Reference(reference=ids["guidance"], type="GuidanceResponse")]),
    )
    resources: list[tuple[str, Resource]] = [
        (ids["response"], response),
        (ids["parameters"], result_parameters(result, ids["response"])),
        (ids["guidance"], guidance),
        (ids["document"], document),
    ]
    return Bundle(
        type="collection",
        timestamp=when,
        entry=[BundleEntry(fullUrl=url, resource=resource) for url, resource in resources],
    )


def bundle_json(aid: DecisionAid, answers: BaseModel, **kwargs: Any) -> str:
    return build_bundle(aid, answers, **kwargs).model_dump_json(indent=2, exclude_none=True) + "\n"
