// Drives `factos ui` in headless Chromium (playwright-core), as a person
// would: reads each page, filters, pages both ways, opens an event,
// requeues a parked message where writes are allowed and is refused where
// they are not. Writes a screenshot of each page to $SHOTS. Started by
// tests/ui_browser.rs, which checks its exit code and its last line.
const { chromium } = require('playwright-core');
const assert = require('assert');

const base = process.env.UI_URL;
const readOnly = process.env.UI_READ_ONLY_URL;
const shots = process.env.SHOTS;
// The page in hand, whose text a failure prints.
let current = null;

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  current = page;
  const positions = () => page.$$eval('#events tbody tr td:first-child a', (as) => as.map((a) => Number(a.textContent)));
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png` });
  const follow = (selector) => Promise.all([page.waitForNavigation(), page.click(selector)]);
  const checked = [];

  // Events: the newest 50.
  await page.goto(`${base}/events`);
  const first = await positions();
  assert.strictEqual(first.length, 50);
  assert.strictEqual(first[0], Number(process.env.HEAD));
  await shot('events');
  checked.push('events');

  // The filter form narrows to one tag.
  await page.fill('#filter input[name=tag]', 'concert:1');
  await page.fill('#filter input[name=limit]', '500');
  await follow('#filter button');
  const tags = await page.$$eval('#events tbody tr td:nth-child(6)', (tds) => tds.map((t) => t.textContent));
  assert.strictEqual(tags.length, 40);
  assert(tags.every((t) => t === 'concert:1'), tags.join());
  await shot('events-filtered');
  checked.push('filter');

  // Paging: older, then newer again.
  await page.goto(`${base}/events`);
  await follow('#older');
  const older = await positions();
  assert.strictEqual(older[0], first[49] - 1);
  await follow('#newer');
  assert.deepStrictEqual(await positions(), first);
  checked.push('paging');

  // An event's detail: its JSON payload pretty-printed.
  await page.goto(`${base}/events`);
  await follow('#events tbody tr:last-child td:first-child a');
  await page.goto(`${base}/events/1`);
  assert.strictEqual(await page.textContent('#payload-kind'), 'JSON');
  assert((await page.textContent('#payload')).includes('"seat": 0'));
  await shot('event');
  checked.push('detail');

  // Subscriptions, and one subscriber's parked events.
  await page.goto(`${base}/subscriptions`);
  assert.strictEqual(await page.locator('#subscriptions tbody tr').count(), 2);
  await shot('subscriptions');
  await follow('text=refunds');
  assert.strictEqual(await page.locator('#parked tbody tr').count(), 12);
  await shot('subscriber');
  checked.push('subscriptions');

  // Read-only: the parked message has no Requeue button, and a POST is refused.
  const viewer = await browser.newPage();
  await viewer.goto(`${readOnly}/outbox/topic?topic=mail`);
  assert.strictEqual(await viewer.locator('#parked tbody tr').count(), 1);
  assert.strictEqual(await viewer.locator('button', { hasText: 'Requeue' }).count(), 0);
  const refused = await viewer.request.post(`${readOnly}/outbox/requeue`, { form: { topic: 'mail', id: '1', csrf: 'x' } });
  assert.strictEqual(refused.status(), 403);
  checked.push('read-only');

  // Writes allowed: requeue the parked message from its page.
  await page.goto(`${base}/outbox`);
  await shot('outbox');
  await follow('#topics a');
  assert.strictEqual(await page.locator('#parked tbody tr').count(), 1);
  assert((await page.textContent('#parked')).includes('550 <no such user>'));
  await shot('outbox-parked');
  await follow('button:has-text("Requeue")');
  assert.strictEqual(await page.textContent('#empty'), 'No parked messages.');
  checked.push('requeue');

  // The store and the chart.
  await page.goto(`${base}/store`);
  assert((await page.textContent('#store')).includes('Schema version'));
  await shot('store');
  await page.goto(`${base}/chart`);
  assert((await page.locator('#append-rate rect').count()) > 0);
  await shot('chart');
  checked.push('store', 'chart');

  await browser.close();
  console.log(JSON.stringify({ ok: true, checked }));
}

main().catch(async (error) => {
  console.error(error);
  if (current) {
    console.error(`on ${current.url()}:`, await current.textContent('body').catch(() => '(no body)'));
  }
  process.exit(1);
});
