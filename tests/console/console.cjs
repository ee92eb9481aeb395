// The web console in headless Chromium (playwright-core), against a live broker with
// traffic: every page loads, a user clicks through topic -> partition -> live tail -> group
// -> lag chart, and what each page shows is checked against what Strom's admin tools
// (`strom ... --output json`, Kafka requests) say. Screenshots go to the output dir.
//
//   node console.cjs read  HTTP_URL BOOTSTRAP STROM_BIN OUT_DIR   (a read-only console)
//   node console.cjs write HTTP_URL BOOTSTRAP STROM_BIN OUT_DIR   (strom.console.write.enable)
//
// The read run expects topic `console-t` (3 partitions, 120 records with keys k0..k119 and a
// header), topic `console-live` being produced to, and group `console-g` with lag on
// `console-t`, as tests/compat/test_console.py sets them up.
"use strict";
const assert = require("node:assert/strict");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const { chromium } = require("playwright-core");

const [mode, http, bootstrap, strom, outDir] = process.argv.slice(2);
const cli = (...args) =>
  JSON.parse(execFileSync(strom, [...args, "--bootstrap-server", bootstrap, "--output", "json"]).toString());

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", e => errors.push(String(e)));
  page.on("console", m => { if (m.type() === "error") errors.push(m.text()); });
  const shot = name => page.screenshot({ path: path.join(outDir, `${mode}-${name}.png`), fullPage: true });
  try {
    if (mode === "read") await readOnly(page, shot);
    else await writes(page, shot);
  } catch (e) {
    await shot("failure").catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
  assert.deepEqual(errors, [], "the page logged errors");
}

// Waits for the page of `hash` to have rendered.
async function loaded(page, hash) {
  await page.waitForSelector(`body[data-loaded="${hash}"]`, { timeout: 20000 });
}

async function cells(page, testid) {
  return page.$$eval(`[data-testid="${testid}"] tbody tr`, rows =>
    rows.map(r => [...r.querySelectorAll("td")].map(td => td.innerText.trim())));
}

const plain = s => s.replace(/,/g, "");

async function readOnly(page, shot) {
  // Cluster overview against `strom cluster describe`.
  await page.goto(http + "/#/");
  await loaded(page, "#/");
  const cluster = cli("cluster", "describe");
  assert.equal(await page.innerText('[data-testid="cluster-id"]'), cluster.cluster_id);
  assert.equal(+await page.innerText('[data-testid="brokers-count"]'), cluster.brokers.length);
  assert.equal(+await page.innerText('[data-testid="controller"]'), cluster.quorum.leader_id);
  assert.equal(await page.innerText('[data-testid="under-replicated"]'), "0");
  const brokers = await cells(page, "brokers");
  assert.equal(brokers[0][1], cluster.brokers[0].host);
  assert.equal(brokers[0][5], cluster.brokers[0].http);
  assert.equal(await page.innerText("#mode"), "read-only");
  await shot("overview");

  // Topics -> console-t.
  await page.click('nav a[data-nav="topics"]');
  await loaded(page, "#/topics");
  assert.equal(await page.$('[data-testid="create-topic"]'), null, "no create form when read-only");
  const listed = await cells(page, "topics");
  const row = listed.find(r => r[0] === "console-t");
  assert.ok(row, "console-t is listed");
  const described = cli("topics", "describe", "console-t")[0];
  assert.equal(+row[1], described.partition_count);
  await shot("topics");
  await page.click('a[href="#/topics/console-t"]');
  await loaded(page, "#/topics/console-t");
  const parts = await cells(page, "partitions");
  assert.equal(parts.length, described.partitions.length);
  for (const p of described.partitions) {
    const r = parts.find(r => +r[0] === p.partition);
    assert.deepEqual([+r[1], r[2], r[3], +plain(r[4]), +plain(r[5])],
      [p.leader, p.replicas.join(","), p.isr.join(","), p.log_start_offset, p.log_end_offset]);
  }
  const configs = await cells(page, "configs");
  assert.ok(configs.some(c => c[0] === "cleanup.policy" && c[1] === "delete"));
  for (const [k, v] of Object.entries(described.configs)) {
    assert.equal(configs.find(c => c[0] === k)?.[1], v ?? "", k);
  }
  await shot("topic");

  // Partition 1 -> its live tail: the newest records, key, value, header, timestamp.
  await page.click('[data-testid="partition-1"]');
  await loaded(page, "#/topics/console-t/tail?partition=1");
  await page.waitForSelector('[data-testid="records"] tbody tr');
  const tailRows = await cells(page, "records");
  const end1 = described.partitions.find(p => p.partition === 1).log_end_offset;
  assert.equal(tailRows.length, end1, "every record of the partition (fewer than the limit)");
  assert.ok(tailRows.every(r => r[0] === "1"));
  assert.equal(+tailRows[0][1], end1 - 1, "newest first");
  assert.match(tailRows[0][3], /^k\d+$/);
  assert.match(tailRows[0][5], /^source: console-test$/);
  await page.fill('[data-testid="filter"]', "k7");
  const filtered = await cells(page, "records");
  assert.ok(filtered.length > 0 && filtered.every(r => r[3].includes("k7")), "the filter keeps matching records only");
  await shot("tail-partition");

  // A live topic's tail moves, stops when paused, moves again when resumed.
  await page.goto(http + "/#/topics/console-live/tail");
  await loaded(page, "#/topics/console-live/tail");
  const newest = async () => {
    await page.waitForSelector('[data-testid="records"] tbody tr');
    return (await cells(page, "records")).map(r => `${r[0]}/${r[1]}`)[0];
  };
  const first = await newest();
  await page.waitForFunction(f => {
    const td = document.querySelector('[data-testid="records"] tbody tr');
    return td && [...td.querySelectorAll("td")].slice(0, 2).map(x => x.innerText).join("/") !== f;
  }, first, { timeout: 15000 });
  await page.click('[data-testid="pause"]');
  assert.equal(await page.innerText('[data-testid="tail-status"]'), "paused");
  const held = await newest();
  await page.waitForTimeout(2500);
  assert.equal(await newest(), held, "paused: nothing new is shown");
  await page.click('[data-testid="pause"]');
  await page.waitForFunction(f => {
    const td = document.querySelector('[data-testid="records"] tbody tr');
    return td && [...td.querySelectorAll("td")].slice(0, 2).map(x => x.innerText).join("/") !== f;
  }, held, { timeout: 15000 });
  await shot("tail-live");

  // Groups -> console-g: lag per partition as `strom groups describe` has it, the chart.
  await page.click('nav a[data-nav="groups"]');
  await loaded(page, "#/groups");
  await shot("groups");
  await page.click('a[href="#/groups/console-g"]');
  await loaded(page, "#/groups/console-g");
  const group = cli("groups", "describe", "console-g");
  assert.equal(await page.innerText('[data-testid="group-state"]'), group.state);
  const lagRows = await cells(page, "group-lag");
  assert.equal(lagRows.length, group.partitions.length);
  let total = 0;
  for (const p of group.partitions) {
    const r = lagRows.find(r => r[0] === p.topic && +r[1] === p.partition);
    assert.deepEqual([+plain(r[2]), +plain(r[3]), +plain(r[4])], [p.current_offset, p.log_end_offset, p.lag]);
    assert.ok(+r[5] >= 0, "lag in seconds shown");
    total += p.lag;
  }
  const lagChart = await page.$('[data-testid="chart-lag"]');
  assert.ok(+await lagChart.getAttribute("data-points") >= 1, "the lag chart has points");
  assert.equal(+await lagChart.getAttribute("data-last"), total, "the chart ends at the lag now");
  assert.equal(await page.$('[data-testid="reset"]'), null, "no reset when read-only");
  await shot("group");

  // Metrics and slowest requests.
  await page.click('nav a[data-nav="metrics"]');
  await loaded(page, "#/metrics");
  for (const id of ["chart-in-records", "chart-out-records", "chart-produce-p99", "chart-connections"]) {
    assert.ok(+await page.getAttribute(`[data-testid="${id}"]`, "data-points") >= 1, id);
  }
  await shot("metrics");
  await page.click('nav a[data-nav="requests"]');
  await loaded(page, "#/requests");
  await page.waitForSelector('[data-testid="slowest"]');
  await shot("requests");
}

async function writes(page, shot) {
  await page.goto(http + "/#/topics");
  await loaded(page, "#/topics");
  assert.equal(await page.innerText("#mode"), "writes enabled");
  // Create, behind a confirmation; cancelling does nothing.
  await page.fill("#new-name", "made-in-console");
  await page.fill("#new-partitions", "4");
  await page.click("#create");
  await page.click("#modal-cancel");
  assert.ok(!cli("topics", "list").includes("made-in-console"), "cancelled: not created");
  await page.click("#create");
  await shot("create-confirm");
  await page.click("#modal-ok");
  await loaded(page, "#/topics/made-in-console");
  assert.equal(cli("topics", "describe", "made-in-console")[0].partition_count, 4);
  // A config, then delete behind a typed confirmation.
  await page.fill("#cfg-key", "retention.ms");
  await page.fill("#cfg-value", "3600000");
  await page.click("#cfg-set");
  await page.click("#modal-ok");
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="configs"] tbody tr')]
    .some(r => r.innerText.includes("retention.ms") && r.innerText.includes("3600000")));
  assert.equal(cli("topics", "describe", "made-in-console")[0].configs["retention.ms"], "3600000");
  await page.click("#delete");
  await page.click("#modal-ok");
  assert.equal(await page.isVisible("#modal"), true, "the name must be typed");
  await page.fill("#modal-check", "made-in-console");
  await page.click("#modal-ok");
  await loaded(page, "#/topics");
  assert.ok(!cli("topics", "list").includes("made-in-console"), "deleted");
  // Reset an empty group's offsets to the earliest.
  await page.goto(http + "/#/groups/console-g");
  await loaded(page, "#/groups/console-g");
  await page.selectOption("#reset-to", "earliest");
  await page.click("#reset");
  await shot("reset-confirm");
  await page.click("#modal-ok");
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="group-lag"] tbody tr')]
    .every(r => r.querySelectorAll("td")[2].innerText === "0"));
  const group = cli("groups", "describe", "console-g");
  assert.ok(group.partitions.every(p => p.current_offset === 0), "reset to the earliest");
  await shot("reset-done");
}

main().then(() => console.log(`console ${mode}: ok`), e => { console.error(e); process.exit(1); });
