// Package imagetest tests the container image and the three-node compose
// file (images/) as IT would use them: the cluster is set up with
// `docker compose run node1 init` and `docker compose up -d`, an API
// token is made inside a container with `vigil token create`, the
// workers and devices are made through the REST API, and real MQTT
// devices publish alarms over TLS while one container is `docker kill`ed
// and started again. Every alarm a node acknowledged must then be on
// every node exactly once, and the nodes' state hashes must agree.
//
// The test needs docker and docker compose (the plugin or docker-compose;
// make deps installs docker-compose when neither is there) and an image
// built by make image, named in $VIGIL_IMAGE: make image-test builds the
// image and runs the test. Without $VIGIL_IMAGE, and under go test
// -short, it is skipped. It lives in the tools module so that its MQTT
// client stays out of the product's go.mod.
package imagetest
