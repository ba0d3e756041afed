// isotest's HTML report: sorting, filtering, memory over time for the
// selected test, and a self-check (open the page with #selftest). The page
// reads fine without it. Untrusted text is only ever set as textContent.
(function () {
  'use strict';
  var SVG = 'http://www.w3.org/2000/svg';
  var STATUS_ORDER = ['PASS', 'FLAKY', 'FAIL', 'SIGNAL', 'OOM', 'TIMEOUT', 'OVER-LIMIT',
    'REGRESSED', 'ERROR', 'SKIPPED', 'NOT-RUN'];
  var tbody = document.getElementById('results').tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  var headers = Array.prototype.slice.call(document.querySelectorAll('#results th'));
  var statusFilter = document.getElementById('status-filter');
  var textFilter = document.getElementById('text-filter');
  var shown = document.getElementById('shown');
  var detail = document.getElementById('detail');
  var samples = JSON.parse(document.getElementById('samples').textContent || '{}');
  document.getElementById('controls').hidden = false;

  function nameOf(row) { return row.cells[1].textContent; }

  function applyFilters() {
    var status = statusFilter.value;
    var text = textFilter.value.toLowerCase();
    var count = 0;
    rows.forEach(function (row) {
      var s = row.dataset.s;
      var statusOk = !status || (status === '!PASS' ? s !== 'PASS' && s !== 'SKIPPED' : s === status);
      var visible = statusOk && (!text || nameOf(row).toLowerCase().indexOf(text) >= 0);
      row.hidden = !visible;
      if (visible) { count++; }
    });
    shown.textContent = count + ' of ' + rows.length + ' shown';
    return count;
  }

  function sortKey(row, key) {
    if (key === 'n') { return nameOf(row); }
    if (key === 's') { return STATUS_ORDER.indexOf(row.dataset.s); }
    return parseFloat(row.dataset[key]);
  }

  function sortBy(key, descending) {
    var sorted = rows.slice().sort(function (a, b) {
      var x = sortKey(a, key), y = sortKey(b, key);
      var order = x < y ? -1 : x > y ? 1 : 0;
      return (descending ? -order : order) || a.dataset.i - b.dataset.i;
    });
    var fragment = document.createDocumentFragment();
    sorted.forEach(function (row) { fragment.appendChild(row); });
    tbody.appendChild(fragment);
    headers.forEach(function (th) {
      th.classList.remove('sorted-asc', 'sorted-desc');
      if (th.dataset.key === key) { th.classList.add(descending ? 'sorted-desc' : 'sorted-asc'); }
    });
  }

  function svgElement(name, attributes, text) {
    var element = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { element.setAttribute(key, attributes[key]); });
    if (text !== undefined) { element.textContent = text; }
    return element;
  }

  function mebibytes(bytes) { return (bytes / 1048576).toFixed(1) + ' MiB'; }

  // Memory over time of the test in `row`, drawn in #detail.
  function select(row) {
    rows.forEach(function (r) { r.classList.remove('selected'); });
    row.classList.add('selected');
    detail.hidden = false;
    detail.textContent = '';
    var heading = document.createElement('h4');
    heading.textContent = 'Memory over time: ' + nameOf(row);
    detail.appendChild(heading);
    var points = (samples[row.dataset.i] || []).filter(function (p) { return p[1] !== null; });
    if (points.length === 0) {
      var note = document.createElement('p');
      note.textContent = 'No samples for this test (the run sampled none, or the JSON report was written without --samples).';
      detail.appendChild(note);
      return 0;
    }
    var width = 800, height = 200, left = 70, bottom = 20;
    var limit = parseFloat(row.dataset.ml);
    var end = Math.max.apply(null, points.map(function (p) { return p[0]; })) || 1;
    var top = Math.max(limit > 0 ? limit : 0, Math.max.apply(null, points.map(function (p) { return p[1]; }))) || 1;
    var x = function (t) { return left + (t / end) * (width - left - 10); };
    var y = function (bytes) { return height - bottom - (bytes / top) * (height - bottom - 10); };
    var svg = svgElement('svg', { viewBox: '0 0 ' + width + ' ' + height, role: 'img' });
    svg.appendChild(svgElement('polyline', {
      points: points.map(function (p) { return x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1); }).join(' ')
    }));
    if (limit > 0) {
      svg.appendChild(svgElement('line', { 'class': 'limit', x1: left, x2: width - 10, y1: y(limit), y2: y(limit) }));
      svg.appendChild(svgElement('text', { x: width - 10, y: y(limit) - 3, 'text-anchor': 'end' }, 'limit ' + mebibytes(limit)));
    }
    svg.appendChild(svgElement('text', { x: 0, y: 14 }, mebibytes(top)));
    svg.appendChild(svgElement('text', { x: 0, y: height - bottom }, '0'));
    svg.appendChild(svgElement('text', { x: left, y: height - 4 }, '0s'));
    svg.appendChild(svgElement('text', { x: width - 10, y: height - 4, 'text-anchor': 'end' }, end.toFixed(3) + 's'));
    detail.appendChild(svg);
    return points.length;
  }

  statusFilter.addEventListener('change', applyFilters);
  textFilter.addEventListener('input', applyFilters);
  headers.forEach(function (th) {
    th.addEventListener('click', function () {
      sortBy(th.dataset.key, th.classList.contains('sorted-asc'));
    });
  });
  tbody.addEventListener('click', function (event) {
    var row = event.target.closest('tr');
    if (row && event.target.tagName !== 'A') { select(row); }
  });
  applyFilters();

  // Applies each filter and sort and checks what the page shows; the
  // result goes in #selftest as JSON, for a headless browser's DOM dump.
  function selftest() {
    var checks = [];
    function check(name, pass, info) { checks.push({ name: name, pass: !!pass, info: String(info) }); }
    var counts = {};
    Array.prototype.forEach.call(document.querySelectorAll('#summary .counts li'), function (li) {
      counts[li.dataset.status] = parseInt(li.dataset.count, 10);
    });
    var total = Object.keys(counts).reduce(function (sum, s) { return sum + counts[s]; }, 0);
    check('a row per test', rows.length === total, rows.length + ' rows, ' + total + ' counted');
    Object.keys(counts).forEach(function (status) {
      statusFilter.value = status;
      var count = applyFilters();
      var wrong = rows.filter(function (r) { return !r.hidden && r.dataset.s !== status; }).length;
      check('status filter ' + status, count === counts[status] && wrong === 0, count + ' shown');
    });
    statusFilter.value = '';
    if (rows.length > 0) {
      var name = nameOf(rows[rows.length - 1]);
      textFilter.value = name;
      var count = applyFilters();
      var matching = rows.filter(function (r) { return !r.hidden; }).every(function (r) {
        return nameOf(r).toLowerCase().indexOf(name.toLowerCase()) >= 0;
      });
      check('name filter', count >= 1 && matching, count + ' shown for ' + JSON.stringify(name));
    }
    textFilter.value = '';
    applyFilters();
    sortBy('d', true);
    var durations = Array.prototype.map.call(tbody.rows, function (r) { return parseFloat(r.dataset.d); });
    check('sort by duration', durations.every(function (d, i) { return i === 0 || durations[i - 1] >= d; }), durations.length);
    sortBy('n', false);
    var names = Array.prototype.map.call(tbody.rows, nameOf);
    check('sort by name', names.every(function (n, i) { return i === 0 || names[i - 1] <= n; }), names.length);
    var sampled = Object.keys(samples)[0];
    if (sampled !== undefined) {
      var drawn = select(document.getElementById('r' + sampled));
      check('memory over time', drawn > 0 && detail.querySelector('polyline') !== null, drawn + ' points');
    }
    sortBy('i', false);
    if (rows.length > 0) {
      // The widest Cases cell there can be, in a copy of the first row.
      var probe = rows[0].cloneNode(true);
      probe.removeAttribute('id');
      probe.hidden = false;
      probe.style.contentVisibility = 'visible';
      var cases = probe.cells[probe.cells.length - 1];
      cases.textContent = '999 (999 failed)';
      tbody.insertBefore(probe, tbody.firstChild);
      var clipped = Array.prototype.filter.call(probe.cells, function (cell) {
        return cell.scrollWidth > cell.clientWidth + 1;
      }).map(function (cell) { return cell.cellIndex; });
      var text = document.createRange();
      text.selectNodeContents(cases);
      var lines = text.getClientRects().length;
      tbody.removeChild(probe);
      check('Cases 999 (999 failed) on one line, no cell clipped', clipped.length === 0 && lines === 1,
        'clipped cells: [' + clipped.join(',') + '], ' + lines + ' line(s)');
    }
    var injected = document.querySelectorAll('img, iframe, object, embed, script[src], #results script, #failures script').length;
    check('no markup from test names or output', injected === 0 && !window.isotestInjected, injected);
    check('no script errors', window.isotestErrors.length === 0, window.isotestErrors.join('; '));
    return checks;
  }

  // How long the page took to be ready: parsed, scripted and laid out.
  document.body.getBoundingClientRect();
  var readyMs = performance.now();

  if (location.hash === '#ready') {
    // Only the clock, for a benchmark that opens the page as a person would.
    var ready = document.getElementById('selftest');
    ready.hidden = false;
    ready.textContent = JSON.stringify({ ready_ms: Math.round(readyMs) });
  } else if (location.hash === '#selftest') {
    var checks;
    try {
      checks = selftest();
    } catch (error) {
      window.isotestErrors.push('selftest: ' + error);
      checks = [];
    }
    // Written once the page has loaded, so that errors reported after the
    // checks ran (content security policy violations come as tasks) count.
    var report = function () {
      var result = document.getElementById('selftest');
      result.hidden = false;
      result.textContent = JSON.stringify({
        ok: checks.length > 0 && window.isotestErrors.length === 0 && checks.every(function (c) { return c.pass; }),
        rows: rows.length,
        ready_ms: Math.round(readyMs),
        checks: checks,
        errors: window.isotestErrors
      });
    };
    if (document.readyState === 'complete') {
      report();
    } else {
      window.addEventListener('load', report);
    }
  }
}());
