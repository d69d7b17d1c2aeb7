// Package browsertest holds the operator console's browser tests: Debian's
// chromium, driven with chromedp, signs operators in and works alarms,
// sessions, the admin pages and the reports, against three real appliance
// nodes in the test's process with real MQTT devices, and follows its page
// to another node when a real vigil process under it is SIGKILLed.
//
// They are system tests (ARCHITECTURE.md): they need a browser (make deps
// installs chromium; a test without one is skipped, saying so), take tens
// of seconds each, and are skipped with go test -short. They live in the
// tools module so that chromedp stays out of the product's go.mod.
// Screenshots of the main pages go to $VIGIL_SCREENSHOTS (else a temporary
// directory), and to docs/screenshots when VIGIL_DOCS_SCREENSHOTS is set.
package browsertest
