from sde.cli import main

main()
