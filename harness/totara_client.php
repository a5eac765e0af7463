<?php
// A Totara site's call to its machine-learning service, in PHP with curl as Totara makes it
// (ml_service\api, written here from the contract in docs/TOTARA.md, not copied): a GET of the
// endpoint with the query built by http_build_query, signed with X-Totara-Time (unix seconds) and
// X-Totara-Ml-Key (hash('sha256', time . key)), a 1 s connect and 2 s total timeout; any status but
// 200, or success false, is a failure (Totara then serves its own cache); items are read as
// [(int) id, score] pairs, in the order given.
//
//   php harness/totara_client.php BASE_URL KEY ENDPOINT [name=value ...] [--clock-offset=SECONDS]
//
// ENDPOINT is /user-items, /similar-items or /health-check. Prints one JSON object:
// {"http_code", "success", "items" ([[id, score], ...] or null), "ids_were_integers", "message",
// "totara" (the health check's key: value lines), "errors", "curl_error", "seconds"}.
// Exit 0 on success, 1 on a failure the service answered, 2 on a usage or transport error.

function usage(string $why): void {
    fwrite(STDERR, "totara_client.php: $why\nusage: php totara_client.php BASE_URL KEY ENDPOINT [name=value ...] "
        . "[--clock-offset=SECONDS]\n");
    exit(2);
}

if ($argc < 4) {
    usage('BASE_URL, KEY and ENDPOINT are required');
}
[$base, $key, $endpoint] = [rtrim($argv[1], '/'), $argv[2], $argv[3]];
if (!in_array($endpoint, ['/user-items', '/similar-items', '/health-check'], true)) {
    usage("unknown endpoint $endpoint");
}
$params = [];
$offset = 0;
foreach (array_slice($argv, 4) as $arg) {
    if (strncmp($arg, '--clock-offset=', 15) === 0) {
        $offset = (int) substr($arg, 15);   // a site whose clock is off, for the stale-signature case
        continue;
    }
    $pair = explode('=', $arg, 2);
    if (count($pair) !== 2) {
        usage("expected name=value, got $arg");
    }
    $params[$pair[0]] = $pair[1];
}

// Totara's token: the request time's digits followed by the shared key, hashed, lower-case hex.
$time = time() + $offset;
$headers = ['X-Totara-Ml-Key: ' . hash('sha256', $time . $key), 'X-Totara-Time: ' . $time];
$url = $base . $endpoint . ($params ? '?' . http_build_query($params) : '');

$curl = curl_init($url);
curl_setopt_array($curl, [
    CURLOPT_HTTPGET => true,
    CURLOPT_HTTPHEADER => $headers,
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_CONNECTTIMEOUT => 1,   // Totara keeps both short: the ML service must never hold a page
    CURLOPT_TIMEOUT => 2,
]);
$started = microtime(true);
$raw = curl_exec($curl);
$seconds = microtime(true) - $started;
$code = (int) curl_getinfo($curl, CURLINFO_HTTP_CODE);
$curl_error = $raw === false ? curl_error($curl) : null;
curl_close($curl);

$out = ['http_code' => $code, 'success' => false, 'items' => null, 'ids_were_integers' => null,
        'message' => null, 'totara' => null, 'errors' => null, 'curl_error' => $curl_error,
        'seconds' => round($seconds, 4)];
if ($raw === false) {
    echo json_encode($out), "\n";
    exit(2);
}
$body = json_decode($raw, true);
if (!is_array($body)) {
    $out['message'] = 'the answer is not a JSON object: ' . substr($raw, 0, 200);
    echo json_encode($out), "\n";
    exit(1);
}
$out['message'] = $body['message'] ?? null;
if ($code !== 200 || empty($body['success'])) {
    echo json_encode($out), "\n";
    exit(1);
}
$out['success'] = true;
if ($endpoint === '/health-check') {
    // Totara's health check prints the service's `totara` object as key: value lines.
    $lines = [];
    foreach ((array) ($body['totara'] ?? []) as $name => $value) {
        $lines[] = "$name: $value";
    }
    $out['totara'] = $lines;
    $out['errors'] = $body['errors'] ?? [];
} else {
    $items = $body['items'] ?? [];
    $out['ids_were_integers'] = true;
    $out['items'] = [];
    foreach ($items as $pair) {
        $out['ids_were_integers'] = $out['ids_were_integers'] && is_int($pair[0]);
        $out['items'][] = [(int) $pair[0], (float) $pair[1]];
    }
}
echo json_encode($out), "\n";
exit(0);
