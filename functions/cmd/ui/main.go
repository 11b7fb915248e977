// Command ui is the page function (/ and /static) as an AWS Lambda entry point.
// Configuration comes from HERD_FUNCTIONS_* environment variables.
package main

import (
	"net/http"

	"github.com/herd-hpc/herd/functions/server"
	"github.com/herd-hpc/herd/functions/ui"
)

func main() {
	server.StartLambda("ui", ui.NewHandler, func(f *server.Functions) http.Handler { return f.UI })
}
