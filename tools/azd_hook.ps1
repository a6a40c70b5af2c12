# azd runs this for each hook of azure.yaml (windows): it finds Python 3.11 or later and runs
# tools/azd_hooks.py with it; see tools/azd_hook.sh, its posix twin.
#   pwsh tools/azd_hook.ps1 prepackage|preprovision|postprovision|postdeploy|postdown
# $env:PYTHON chooses the interpreter.
param([Parameter(Mandatory = $true)][string]$Step)
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..')
$candidates = @()
if ($env:PYTHON) { $candidates += , @($env:PYTHON) }
$candidates += , @('py', '-3.11')
$candidates += , @('python3')
$candidates += , @('python')
foreach ($candidate in $candidates) {
    $exe = $candidate[0]
    $rest = @($candidate | Select-Object -Skip 1)
    if (-not (Get-Command $exe -ErrorAction SilentlyContinue)) { continue }
    & $exe @rest -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>$null
    if ($LASTEXITCODE -eq 0) {
        & $exe @rest -m tools.azd_hooks $Step
        exit $LASTEXITCODE
    }
}
Write-Error 'the azd hooks need Python 3.11 or later, and found none (tried $env:PYTHON, py -3.11, python3, python): install Python 3.11, or set PYTHON to its path'
exit 1
