// Drives a Cogwheel gateway's deployments API with the official `replicate` npm client; prints one JSON line.
// Env: COGWHEEL_API_URL (the API root, with /v1), REPLICATE_API_TOKEN, COGWHEEL_MODEL (owner/name),
// COGWHEEL_VERSION (a version of it), COGWHEEL_DEPLOYMENT (the name to create).
import Replicate from "replicate";

const { COGWHEEL_API_URL: baseUrl, REPLICATE_API_TOKEN: auth } = process.env;
const { COGWHEEL_MODEL: model, COGWHEEL_VERSION: version, COGWHEEL_DEPLOYMENT: name } = process.env;
if (!baseUrl || !auth || !model || !version || !name) {
  console.error("COGWHEEL_API_URL, REPLICATE_API_TOKEN, COGWHEEL_MODEL, COGWHEEL_VERSION, COGWHEEL_DEPLOYMENT are required");
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
report.hardware = (await replicate.hardware.list()).map((item) => item.sku);
const created = await replicate.deployments.create({
  name, model, version, hardware: "cpu", min_instances: 0, max_instances: 1,
});
const owner = created.owner;
report.created = { owner, name: created.name, release: created.current_release };
const fetched = await replicate.deployments.get(owner, name);
report.fetched_number = fetched.current_release.number;
const updated = await replicate.deployments.update(owner, name, { max_instances: 2 });
report.updated = { number: updated.current_release.number, configuration: updated.current_release.configuration };
const page = await replicate.deployments.list();
report.listed = page.results.map((deployment) => `${deployment.owner}/${deployment.name}`);
const prediction = await replicate.deployments.predictions.create(owner, name, {
  input: { text: "js deployment" }, wait: true,
});
report.prediction = { status: prediction.status, output: prediction.output, deployment: prediction.deployment };
report.bad_hardware_status = await statusOf(replicate.deployments.update(owner, name, { hardware: "gpu-a40-small" }));
// Refused (409) while the deployment's instance is online; it scales to zero once idle, then the delete succeeds.
report.delete_statuses = [];
for (let attempt = 0; attempt < 180 && report.deleted === undefined; attempt++) {
  try {
    report.deleted = await replicate.deployments.delete(owner, name);
  } catch (error) {
    if (!error.response || error.response.status !== 409) throw error;
    report.delete_statuses.push(409);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
report.missing_status = await statusOf(replicate.deployments.get(owner, name));

console.log(JSON.stringify(report));
