// Validate FHIR R4 JSON files with FHIR.js (an independent validator, not fhir.resources).
// Usage: node validate.js FILE...  Prints one JSON line per file: {"file", "valid", "messages"}.
// Exits 1 when any file has an error or fatal message.
"use strict";
const fs = require("fs");
const { Fhir, Versions } = require("fhir");
const { ParseConformance } = require("fhir/parseConformance");

// The R4 (4.0.1) structure definitions and value sets that FHIR.js ships.
const fhir = new Fhir(new ParseConformance(true, Versions.R4));
let failed = false;
for (const file of process.argv.slice(2)) {
  const resource = JSON.parse(fs.readFileSync(file, "utf8"));
  const result = fhir.validate(resource, { errorOnUnexpected: true });
  const bad = result.messages.filter((m) => m.severity === "error" || m.severity === "fatal");
  if (bad.length) failed = true;
  console.log(JSON.stringify({ file, valid: result.valid && !bad.length, messages: result.messages }));
}
process.exit(failed ? 1 : 0);
