// Package infra holds how herd is deployed, as files: systemd units and
// Redis and MinIO configuration for the appliance (systemd/, redis/, minio/,
// herd.ini) and a SAM template for running the functions on AWS Lambda
// (aws/template.yaml). Its tests check that these files agree with each
// other and with the programs in the tree.
package infra
