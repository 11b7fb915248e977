// Command boot is the boot function (/boot/...) as an AWS Lambda entry point.
// Configuration comes from HERD_FUNCTIONS_* environment variables.
package main

import (
	"net/http"

	"github.com/herd-hpc/herd/functions/server"
)

func main() {
	server.StartLambda("boot", nil, func(f *server.Functions) http.Handler { return f.Boot })
}
