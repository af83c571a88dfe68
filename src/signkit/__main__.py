from signkit.cli import main

main()
