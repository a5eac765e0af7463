// A learning platform's xAPI client, for tests/slow/test_xapi_client.py: reads a plan (JSON) on
// stdin, runs each step with a real client library against the endpoint, prints one JSON result
// per step on stdout. Statements are built as a platform builds them, with each library's own
// types: @xapi/xapi (POST /statements, one or a list; GET /about) and Rustici's TinCanJS
// (LRS.saveStatement: PUT /statements?statementId=, the id stamped by TinCan.Statement).
//
// plan: {"endpoint": "http://127.0.0.1:PORT/xapi/", "username": "...", "password": "KEY",
//        "version": "1.0.3", "steps": [{"op": "about"} | {"op": "send", "events": [EVENT, ...]}
//        | {"op": "tincan", "events": [EVENT, ...]} | {"op": "raw", "statement": {...}}]}
// EVENT: {"user": "ann", "activity": IRI, "name": "...", "verb": "answered", "success": true,
//         "scaled": 0.8, "parent": IRI}
"use strict";

const XAPI = require("@xapi/xapi").default;
const TinCan = require("tincanjs");

const HOME = "https://lms.example.org";
const TYPE = "http://adlnet.gov/expapi/activities/question";

function verbOf(name) {
  const known = XAPI.Verbs[name.toUpperCase()];
  return known || { id: `http://adlnet.gov/expapi/verbs/${name}`, display: { "en-US": name } };
}

function xapiStatement(e) {
  const statement = {
    actor: { objectType: "Agent", name: e.user, account: { homePage: HOME, name: e.user } },
    verb: verbOf(e.verb),
    object: { objectType: "Activity", id: e.activity, definition: { name: { "en-US": e.name || e.activity }, type: TYPE } },
    timestamp: new Date().toISOString(),
  };
  if (e.success !== undefined) {
    statement.result = { success: e.success, completion: true };
    if (e.scaled !== undefined) statement.result.score = { scaled: e.scaled };
  }
  if (e.parent) statement.context = { contextActivities: { parent: [{ objectType: "Activity", id: e.parent }] } };
  return statement;
}

function tincanStatement(e) {
  const cfg = {
    actor: { objectType: "Agent", name: e.user, account: { homePage: HOME, name: e.user } },
    verb: { id: verbOf(e.verb).id, display: { "en-US": e.verb } },
    target: { objectType: "Activity", id: e.activity, definition: { name: { "en-US": e.name || e.activity }, type: TYPE } },
  };
  if (e.success !== undefined) {
    cfg.result = { success: e.success };
    if (e.scaled !== undefined) cfg.result.score = { scaled: e.scaled };
  }
  if (e.parent) cfg.context = { contextActivities: { parent: [{ id: e.parent }] } };
  return new TinCan.Statement(cfg);   // stamps an id (a UUID) and the timestamp
}

function failure(err) {
  const response = err && err.response;
  return { error: String(err && err.message ? err.message : err), status: response ? response.status : null,
           body: response ? response.data : null };
}

function tincanSave(lrs, statement) {
  return new Promise((resolve) => {
    lrs.saveStatement(statement, {
      callback: (err, xhr) => resolve({ id: statement.id, status: xhr ? xhr.status : null,
                                        error: err ? String(err) : null,
                                        version: xhr && xhr.getResponseHeader ? xhr.getResponseHeader("X-Experience-API-Version") : null }),
    });
  });
}

async function run(plan) {
  const xapi = new XAPI({ endpoint: plan.endpoint, auth: XAPI.toBasicAuth(plan.username, plan.password),
                          version: plan.version || "1.0.3" });
  const lrs = new TinCan.LRS({ endpoint: plan.endpoint, username: plan.username, password: plan.password,
                               version: "1.0.0", allowFail: false });
  const results = [];
  for (const step of plan.steps) {
    try {
      if (step.op === "about") {
        const answer = await xapi.getAbout();
        results.push({ status: answer.status, data: answer.data, version: answer.headers["x-experience-api-version"] });
      } else if (step.op === "send" && step.events.length === 1) {
        const statement = xapiStatement(step.events[0]);
        const answer = await xapi.sendStatement({ statement });
        results.push({ status: answer.status, ids: answer.data, version: answer.headers["x-experience-api-version"] });
      } else if (step.op === "send") {
        const statements = step.events.map(xapiStatement);
        const answer = await xapi.sendStatements({ statements });
        results.push({ status: answer.status, ids: answer.data, version: answer.headers["x-experience-api-version"] });
      } else if (step.op === "raw") {
        const answer = await xapi.sendStatement({ statement: step.statement });
        results.push({ status: answer.status, ids: answer.data });
      } else if (step.op === "tincan") {
        const saved = [];
        for (const e of step.events) saved.push(await tincanSave(lrs, tincanStatement(e)));
        results.push({ saved });
      } else {
        results.push({ error: `unknown op ${step.op}` });
      }
    } catch (err) {
      results.push(failure(err));
    }
  }
  return results;
}

let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  run(JSON.parse(input)).then(
    (results) => { process.stdout.write(JSON.stringify(results) + "\n"); },
    (err) => { process.stderr.write(String(err && err.stack ? err.stack : err) + "\n"); process.exit(1); },
  );
});
