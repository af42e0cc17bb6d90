// Drives a Cogwheel gateway with the official `replicate` npm client and prints what it saw as one JSON line.
// Env: COGWHEEL_API_URL (the API root, with /v1, as the client's baseUrl expects), REPLICATE_API_TOKEN,
// COGWHEEL_HELLO_VERSION (version id of cogwheel/hello-world).
import Replicate from "replicate";

const baseUrl = process.env.COGWHEEL_API_URL;
const auth = process.env.REPLICATE_API_TOKEN;
const version = process.env.COGWHEEL_HELLO_VERSION;
if (!baseUrl || !auth || !version) {
  console.error("COGWHEEL_API_URL, REPLICATE_API_TOKEN and COGWHEEL_HELLO_VERSION are required");
  process.exit(2);
}

const replicate = new Replicate({ auth, baseUrl });

async function statusOf(promise) {
  try {
    await promise;
    return "no error";
  } catch (error) {
    return error.response ? error.response.status : String(error);
  }
}

const report = {};
report.run_by_model = await replicate.run("cogwheel/hello-world", { input: { text: "js model" } });
report.run_by_version = await replicate.run(`cogwheel/hello-world:${version}`, { input: { text: "js version" } });

const created = await replicate.predictions.create({ version, input: { text: "js poll" } });
report.created_status = created.status;
const waited = await replicate.wait(created, { interval: 100 });
report.waited = { status: waited.status, output: waited.output };
const fetched = await replicate.predictions.get(created.id);
report.fetched = { id: fetched.id, status: fetched.status, output: fetched.output, get_url: fetched.urls.get };
report.created_id = created.id;

const page = await replicate.predictions.list();
report.listed_ids = page.results.map((prediction) => prediction.id);

const model = await replicate.models.get("cogwheel", "hello-world");
report.model = { owner: model.owner, name: model.name, latest_version: model.latest_version && model.latest_version.id };

report.missing_model_status = await statusOf(replicate.models.get("cogwheel", "no-such-model"));
report.missing_prediction_status = await statusOf(replicate.predictions.get("no-such-prediction"));
const stranger = new Replicate({ auth: "cwk_not_a_real_token", baseUrl });
report.bad_token_status = await statusOf(stranger.predictions.list());

// Idempotency-Key (our extension): the client has no per-call headers, so its `fetch` option adds it.
const key = `js-${created.id}`;
const keyed = new Replicate({
  auth,
  baseUrl,
  fetch: (url, options) => fetch(url, { ...options, headers: { ...options.headers, "Idempotency-Key": key } }),
});
const first = await keyed.predictions.create({ version, input: { text: "js keyed" } });
const again = await keyed.predictions.create({ version, input: { text: "js keyed" } });
report.idempotent = { first_id: first.id, again_id: again.id };
report.idempotent.other_body_status = await statusOf(keyed.predictions.create({ version, input: { text: "other" } }));

console.log(JSON.stringify(report));
