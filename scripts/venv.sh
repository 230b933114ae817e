# Sourced by test.sh and demo.sh: creates .venv when missing, installs both requirement files once
# (re-installs when a requirement file changes), and activates it.
venv_dir=.venv
stamp="$venv_dir/.requirements.sha256"
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv_dir/bin/python" ]; then
    echo "Creating $venv_dir ..."
    python3 -m venv "$venv_dir"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Installing requirements into $venv_dir (about a minute) ..."
    "$venv_dir/bin/python" -m pip install -q --upgrade pip
    "$venv_dir/bin/python" -m pip install -q -r requirements.txt -r requirements-dev.txt
    echo "$want" > "$stamp"
fi
source "$venv_dir/bin/activate"
